/*
 * rill/xen_vchan.h - vchan flows between Xen domains, compatible with
 * Xen's libxenvchan. Included by rill.h; do not include directly.
 *
 * The same flow as rill/vchan.h (one server, one client, a control page
 * in Xen's struct vchan_interface layout and two byte rings), met the way
 * Xen domains meet:
 *   - the server shares the control page and the ring pages with the
 *     client's domain through the grant table (libxengnttab's gntshr),
 *     allocates an unbound event channel for that domain, and writes
 *     `ring-ref` (the page's grant) and `event-channel` (the port) under
 *     its xenstore path, readable by the client's domain only;
 *   - the client reads the two keys, maps the grants (libxengnttab) and
 *     binds the event channel (libxenevtchn).
 * The control page is filled as libxenvchan 4.17 fills it: orders, the
 * ring pages' grant references in the page, live bytes and notify bits;
 * each side asks for an unmap notification on its own live byte, so a
 * process that dies (even by SIGKILL) is seen as closed by its peer.
 *
 * Addressing, as in ocaml-vchan: the other end's domain id plus a port
 * name ([a-zA-Z0-9_-]+). The default xenstore path of a vchan is
 *   <server's domain path>/data/vchan/<client domid>/<port>
 * e.g. /local/domain/0/data/vchan/5/agent for a server in dom0 and a
 * client in domain 5. opts->path gives a full xenstore path instead (for
 * libxenvchan tools such as Xen's vchan-socket-proxy); a path without a
 * leading '/' is relative to this domain's home in xenstore. libxenvchan
 * builds "<path>/event-channel" in a 64-byte buffer, so paths are at most
 * 49 bytes (RILL_EINVAL otherwise).
 *
 * Rings: as libxenvchan rounds them (rill/vchan.h), at most 1 MiB per
 * direction (the grant references of both rings fit in the page).
 * Reads copy out of the shared pages, every index the peer owns is read
 * once and checked: a bad one fails the flow with RILL_ERING.
 *
 * Closing: shutdown(write) and close set this side's live byte to 0. As
 * in libxenvchan, a peer whose live byte is 0 has closed: reads drain the
 * ring and report EOF, writes fail with RILL_ECLOSED (no half-close:
 * shut+xen-vchan: adds it).
 *
 * Needs the xen-evtchn, xen-gntdev and xen-gntalloc devices
 * (/dev/xen/evtchn, /dev/xen/gntdev, /dev/xen/gntalloc) and xenstore. On
 * a machine without them the calls fail with -ENODEV and
 * rill_last_errmsg() says so; a rill built without Xen's libraries fails
 * every call with -ENOTSUP.
 */
#ifndef RILL_XEN_VCHAN_H
#define RILL_XEN_VCHAN_H

#ifdef __cplusplus
extern "C" {
#endif

/* Options of a Xen vchan. Zero or NULL fields take the defaults. */
struct rill_xen_vchan_opts {
	/* The vchan's xenstore path (the directory of ring-ref and
	 * event-channel); NULL: the default path above. */
	const char *path;
	/* Server only: minimum ring sizes towards this side (read) and
	 * towards the client (write), 1 .. 1 MiB; 0: 64 KiB. */
	size_t read_size, write_size;
};

/*
 * Creates the server end of a vchan for a client in domain domid, named
 * port (may be NULL when opts->path is set), and waits on loop for the
 * client. The flow is usable at once: writes fill the ring before the
 * client arrives, reads wait for it. cb (may be NULL) is called once
 * when the client attached. The xenstore keys are removed when the flow
 * is closed (as libxenvchan does).
 *
 * Returns 0 and stores the flow (the caller closes it), or synchronously:
 * RILL_EINVAL (bad domid, port, path or size), -ENODEV (no Xen devices),
 * -ENOTSUP (built without Xen), -errno from the grant, event channel or
 * xenstore calls; rill_last_errmsg() explains.
 */
RILL_EXTERN int rill_xen_vchan_server(uv_loop_t *loop, unsigned domid,
                                      const char *port,
                                      const struct rill_xen_vchan_opts *opts,
                                      rill_vchan_server_cb cb, void *ud,
                                      struct rill_flow **out);

/*
 * Connects to the server of port in domain domid (opts may be NULL;
 * only opts->path is used). copts may be NULL: timeout_ms bounds the
 * connect, retry_until_ms keeps looking for the server's keys (polling
 * xenstore) while they do not exist yet. cb gets the flow (status 0;
 * the callee owns and closes it) or an error: RILL_ECONNREFUSED (no
 * server keys), -EBUSY (the vchan has a client), RILL_ETIMEDOUT,
 * RILL_ERING (bad orders in the page), -errno from mapping or binding,
 * with errmsg saying why. Never called inside this call.
 * Returns 0, or synchronously (cb never called) RILL_EINVAL, -ENODEV,
 * -ENOTSUP, RILL_ENOMEM.
 */
RILL_EXTERN int rill_xen_vchan_client(uv_loop_t *loop, unsigned domid,
                                      const char *port,
                                      const struct rill_xen_vchan_opts *opts,
                                      const struct rill_connect_opts *copts,
                                      rill_connect_cb cb, void *ud);

/*
 * The default xenstore path of the vchan port between a server in
 * server_domid and a client in client_domid, into buf. Needs no Xen.
 * Returns 0, RILL_EINVAL (bad port or domid), -ENAMETOOLONG (longer
 * than 49 bytes, or than buf).
 */
RILL_EXTERN int rill_xen_vchan_path(unsigned server_domid,
                                    unsigned client_domid, const char *port,
                                    char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* RILL_XEN_VCHAN_H */
