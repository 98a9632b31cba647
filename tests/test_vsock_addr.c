/*
 * Addresses of vsock, AF_HYPERV, hybrid vsock and HyperKit (doc/uri.md),
 * and the hybrid-vsock reply parser: pure code, tested on every platform.
 */
#include "harness.h"
#include "rill.h"
#include "transport/vsock/addr.h"

TEST(vsock_parse_names_and_numbers)
{
	uint32_t cid, port;
	const char *what;
	TH_OK(rill__vsock_parse("//any:5000", &cid, &port, &what));
	TH_EQ_U64(cid, 0xFFFFFFFFu);
	TH_EQ_U64(port, 5000);
	TH_OK(rill__vsock_parse("//hypervisor:1", &cid, &port, &what));
	TH_EQ_U64(cid, 0);
	TH_OK(rill__vsock_parse("//local:2", &cid, &port, &what));
	TH_EQ_U64(cid, 1);
	TH_OK(rill__vsock_parse("//host:3", &cid, &port, &what));
	TH_EQ_U64(cid, 2);
	TH_OK(rill__vsock_parse("//42:4294967295", &cid, &port, &what));
	TH_EQ_U64(cid, 42);
	TH_EQ_U64(port, 4294967295u);
	TH_OK(rill__vsock_parse("//3:any", &cid, &port, &what));
	TH_EQ_U64(port, 0xFFFFFFFFu);
}

TEST(vsock_parse_errors_name_the_part)
{
	uint32_t cid, port;
	const char *what;
	TH_EQ_INT(rill__vsock_parse("//guest:1", &cid, &port, &what), -1);
	TH_EQ_STR(what, "cid");
	TH_EQ_INT(rill__vsock_parse("//3:4294967296", &cid, &port, &what), -1);
	TH_EQ_STR(what, "port");
	TH_EQ_INT(rill__vsock_parse("//3:", &cid, &port, &what), -1);
	TH_EQ_STR(what, "port");
	TH_EQ_INT(rill__vsock_parse("//:5", &cid, &port, &what), -1);
	TH_EQ_STR(what, "cid");
	TH_EQ_INT(rill__vsock_parse("3:5", &cid, &port, &what), -1);
	TH_EQ_STR(what, "address");
	TH_EQ_INT(rill__vsock_parse("//-1:5", &cid, &port, &what), -1);
	TH_EQ_INT(rill__vsock_parse("//3:+5", &cid, &port, &what), -1);
}

TEST(vsock_format_uses_names)
{
	char buf[64];
	TH_OK(rill__vsock_format(2, 80, buf, sizeof buf));
	TH_EQ_STR(buf, "vsock://host:80");
	TH_OK(rill__vsock_format(0xFFFFFFFFu, 5000, buf, sizeof buf));
	TH_EQ_STR(buf, "vsock://any:5000");
	TH_OK(rill__vsock_format(7, 1, buf, sizeof buf));
	TH_EQ_STR(buf, "vsock://7:1");
	TH_EQ_ERR(rill__vsock_format(7, 1, buf, 8), -ENOSPC);
}

TEST(vsock_listener_cid)
{
	/* A listener bound to one CID is reached there. */
	TH_EQ_U64(rill__vsock_listener_cid(3, 7), 3);
	TH_EQ_U64(rill__vsock_listener_cid(RILL__VSOCK_CID_LOCAL, 3), 1);
	/* On any CID: the machine's own CID (a guest's, or the host's 2)... */
	TH_EQ_U64(rill__vsock_listener_cid(RILL__VSOCK_CID_ANY, 3), 3);
	TH_EQ_U64(
	    rill__vsock_listener_cid(RILL__VSOCK_CID_ANY, RILL__VSOCK_CID_HOST),
	    RILL__VSOCK_CID_HOST);
	/* ...or, when the kernel knows none, CID 1 (vsock_loopback). */
	TH_EQ_U64(
	    rill__vsock_listener_cid(RILL__VSOCK_CID_ANY, RILL__VSOCK_CID_ANY),
	    RILL__VSOCK_CID_LOCAL);
}

TEST(path_port_parse)
{
	char path[108];
	uint32_t port;
	const char *what;
	TH_OK(rill__path_port_parse("/tmp/v.sock:52", path, sizeof path, &port,
	                            &what));
	TH_EQ_STR(path, "/tmp/v.sock");
	TH_EQ_U64(port, 52);
	/* The last colon separates: paths may hold colons. */
	TH_OK(
	    rill__path_port_parse("/a:b/c:7", path, sizeof path, &port, &what));
	TH_EQ_STR(path, "/a:b/c");
	TH_EQ_INT(rill__path_port_parse("/tmp/v.sock", path, sizeof path, &port,
	                                &what),
	          -1);
	TH_EQ_STR(what, "port");
	TH_EQ_INT(rill__path_port_parse(":5", path, sizeof path, &port, &what),
	          -1);
	TH_EQ_STR(what, "path");
	TH_EQ_INT(
	    rill__path_port_parse("/x:5x", path, sizeof path, &port, &what),
	    -1);
	TH_EQ_INT(rill__path_port_parse("/long/path:1", path, 5, &port, &what),
	          -1);
	TH_EQ_STR(what, "path");
}

TEST(guid_parse_and_format)
{
	struct rill__guid g, h;
	TH_OK(rill__guid_parse("90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd", 36, &g));
	TH_EQ_U64(g.data1, 0x90db8b89u);
	TH_EQ_U64(g.data2, 0x0d35);
	TH_EQ_U64(g.data3, 0x4f79);
	TH_EQ_INT(g.data4[0], 0x8c);
	TH_EQ_INT(g.data4[7], 0xcd);
	char buf[40];
	rill__guid_format(&g, buf);
	TH_EQ_STR(buf, "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd");
	/* Braces and upper case are accepted. */
	TH_OK(
	    rill__guid_parse("{90DB8B89-0D35-4F79-8CE9-49EA0AC8B7CD}", 38, &h));
	TH_TRUE(rill__guid_equal(&g, &h));
	TH_EQ_INT(
	    rill__guid_parse("90db8b89-0d35-4f79-8ce9-49ea0ac8b7c", 35, &h),
	    -1);
	TH_EQ_INT(
	    rill__guid_parse("90db8b89-0d35-4f79-8ce949ea0ac8b7cd0", 36, &h),
	    -1);
	TH_EQ_INT(
	    rill__guid_parse("90db8b8g-0d35-4f79-8ce9-49ea0ac8b7cd", 36, &h),
	    -1);
	TH_EQ_INT(
	    rill__guid_parse("90db8b8-90d35-4f79-8ce9-49ea0ac8b7cd", 36, &h),
	    -1);
}

TEST(hvsock_port_service_mapping)
{
	struct rill__guid g;
	rill__hvsock_service_of_port(5000, &g);
	char buf[40];
	rill__guid_format(&g, buf);
	TH_EQ_STR(buf, "00001388-facb-11e6-bd58-64006a7986d3");
	uint32_t port = 0;
	TH_OK(rill__hvsock_port_of_service(&g, &port));
	TH_EQ_U64(port, 5000);
	struct rill__guid h;
	TH_OK(rill__guid_parse("00001388-FACB-11E6-BD58-64006A7986D3", 36, &h));
	TH_TRUE(rill__guid_equal(&g, &h));
	g.data4[7] ^= 1;
	TH_EQ_INT(rill__hvsock_port_of_service(&g, &port), -1);
}

TEST(hvsock_well_known_vms)
{
	static const char *const names[] = {"wildcard", "children", "loopback",
	                                    "parent"};
	static const char *const guids[] = {
	    "00000000-0000-0000-0000-000000000000",
	    "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd",
	    "e0e16197-dd56-4a10-9195-5ee7a155a838",
	    "a42e7cda-d03f-480c-9cc2-a4de20abb878",
	};
	for (int i = 0; i < 4; i++) {
		struct rill__guid g;
		char buf[40];
		TH_OK(rill__hvsock_vm_by_name(names[i], strlen(names[i]), &g));
		rill__guid_format(&g, buf);
		TH_EQ_STR(buf, guids[i]);
		TH_EQ_STR(rill__hvsock_vm_name(&g), names[i]);
	}
	struct rill__guid g;
	TH_EQ_INT(rill__hvsock_vm_by_name("host", 4, &g), -1);
}

TEST(hvsock_uri_parse_and_format)
{
	struct rill__guid vm, sv;
	const char *what;
	char buf[128];
	TH_OK(rill__hvsock_parse("//parent/5000", &vm, &sv, &what));
	TH_EQ_STR(rill__hvsock_vm_name(&vm), "parent");
	TH_OK(rill__hvsock_format(&vm, &sv, buf, sizeof buf));
	TH_EQ_STR(buf, "hvsock://parent/5000");
	TH_OK(rill__hvsock_parse("//3f2504e0-4f89-11d3-9a0c-0305e82c3301/"
	                         "{0000002a-facb-11e6-bd58-64006a7986d3}",
	                         &vm, &sv, &what));
	TH_OK(rill__hvsock_format(&vm, &sv, buf, sizeof buf));
	TH_EQ_STR(buf, "hvsock://3f2504e0-4f89-11d3-9a0c-0305e82c3301/42");
	TH_OK(rill__hvsock_parse("//wildcard/3f2504e0-4f89-11d3-9a0c-"
	                         "0305e82c3301",
	                         &vm, &sv, &what));
	TH_OK(rill__hvsock_format(&vm, &sv, buf, sizeof buf));
	TH_EQ_STR(buf,
	          "hvsock://wildcard/3f2504e0-4f89-11d3-9a0c-0305e82c3301");
	TH_EQ_INT(rill__hvsock_parse("//nowhere/1", &vm, &sv, &what), -1);
	TH_EQ_STR(what, "vm");
	TH_EQ_INT(rill__hvsock_parse("//parent/x", &vm, &sv, &what), -1);
	TH_EQ_STR(what, "service");
	TH_EQ_INT(rill__hvsock_parse("//parent", &vm, &sv, &what), -1);
	TH_EQ_STR(what, "address");
}

TEST(hvsock_sockaddr_layout)
{
	/* SOCKADDR_HV: u16 family 34, u16 reserved, GUID VmId, GUID
	 * ServiceId; GUID Data1..3 little-endian as Windows stores them. */
	struct rill__guid vm, sv;
	const char *what;
	TH_OK(rill__hvsock_parse("//children/5000", &vm, &sv, &what));
	uint8_t sa[RILL__SOCKADDR_HV_LEN];
	rill__hvsock_sockaddr(&vm, &sv, sa);
	static const uint8_t want[36] = {
	    34,   0,    0,    0,    0x89, 0x8b, 0xdb, 0x90, 0x35,
	    0x0d, 0x79, 0x4f, 0x8c, 0xe9, 0x49, 0xea, 0x0a, 0xc8,
	    0xb7, 0xcd, 0x88, 0x13, 0x00, 0x00, 0xcb, 0xfa, 0xe6,
	    0x11, 0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3};
	TH_EQ_MEM(sa, want, 36);
}

static int reply(const char *s, uint32_t *port)
{
	return rill__hybrid_parse_reply((const uint8_t *)s, strlen(s), port);
}

TEST(hybrid_reply_parser)
{
	uint32_t p = 0;
	TH_EQ_INT(reply("OK 1073741824\n", &p), 14);
	TH_EQ_U64(p, 1073741824u);
	TH_EQ_INT(reply("OK 5\nrest of stream", &p), 5);
	TH_EQ_U64(p, 5);
	/* Prefixes ask for more. */
	TH_EQ_INT(reply("", &p), 0);
	TH_EQ_INT(reply("O", &p), 0);
	TH_EQ_INT(reply("OK ", &p), 0);
	TH_EQ_INT(reply("OK 12", &p), 0);
	/* Anything else fails as soon as it is seen. */
	TH_EQ_INT(reply("FAILURE\n", &p), -1);
	TH_EQ_INT(reply("F", &p), -1);
	TH_EQ_INT(reply("OK\n", &p), -1);
	TH_EQ_INT(reply("OK \n", &p), -1);
	TH_EQ_INT(reply("OK -1\n", &p), -1);
	TH_EQ_INT(reply("OK 12 \n", &p), -1);
	TH_EQ_INT(reply("ok 12\n", &p), -1);
	TH_EQ_INT(reply("OK 99999999999\n", &p), -1);
	char longr[80];
	memset(longr, '1', sizeof longr);
	memcpy(longr, "OK ", 3);
	longr[79] = '\0';
	TH_EQ_INT(reply(longr, &p), -2);
}

TEST(escape_for_messages)
{
	char out[32];
	rill__escape((const uint8_t *)"NO\r\n\x01\"", 6, out, sizeof out);
	TH_EQ_STR(out, "NO\\r\\n\\x01\\\"");
	rill__escape((const uint8_t *)"abcdefghijklmnopqrstuvwxyz0123456789",
	             36, out, 12);
	TH_EQ_STR(out, "abcdefgh...");
}
