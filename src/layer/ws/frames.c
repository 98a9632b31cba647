/*
 * Received frames (RFC 6455 section 5), parsed here rather than by
 * libwslay: wslay unmasks a client's payload one byte at a time, with a
 * 64-bit modulo per byte, after copying it through a 4 KiB buffer; on a
 * `rill relay ws+tcp://` that loop alone was 80% of the relay's CPU
 * (perf), 4.2 s of CPU per GiB against 0.5 for the plain relay's
 * user-space copy (BENCHMARKS.md). Here the payload is unmasked eight
 * bytes at a time straight from the buffer read below into the
 * reader's buffer: one pass, one copy. Control frames to send (pongs,
 * Close) are still queued in wslay, which writes them (flow.c).
 *
 * What is checked, and the Close code a violation gets (section 7.4.1):
 * reserved bits and opcodes, the mask bit by role, a length not in its
 * shortest form or with the top bit set, a control frame over 125 bytes
 * or fragmented, a continuation without a message or a new message
 * inside a fragmented one, a Close of 1 byte or with an invalid code:
 * 1002. Text (and a Close reason) that is not UTF-8, checked as it
 * arrives and at the message's end: 1007. A frame or message over
 * max_message: 1009, from its header, before its payload.
 */
#include <string.h>

#include "core/core.h"
#include "layer/ws/ws_internal.h"

/* The length a frame header of n bytes announces, once complete; 0 when
 * more header bytes are needed. */
static size_t ws_header_len(const uint8_t *h, size_t n, uint64_t *len)
{
	if (n < 2)
		return 0;
	size_t need = 2 + ((h[1] & 0x80) ? 4 : 0);
	uint8_t l7 = h[1] & 0x7f;
	need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
	if (n < need)
		return 0;
	if (l7 < 126) {
		*len = l7;
	} else if (l7 == 126) {
		*len = (uint64_t)h[2] << 8 | h[3];
	} else {
		*len = 0;
		for (int i = 0; i < 8; i++)
			*len = *len << 8 | h[2 + i];
	}
	return need;
}

/* UTF-8 (RFC 3629 section 4): the next byte's range, bytes still due. */
static void ws_utf8_reset(struct ws_utf8 *u)
{
	u->need = 0;
	u->lo = 0x80;
	u->hi = 0xbf;
}

static bool ws_utf8(struct ws_utf8 *u, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t b = p[i];
		if (u->need == 0) {
			/* Runs of ASCII, eight at a time. */
			if (i + 8 <= n) {
				uint64_t v;
				memcpy(&v, p + i, 8);
				if ((v & 0x8080808080808080ull) == 0) {
					i += 8;
					continue;
				}
			}
			i++;
			if (b < 0x80)
				continue;
			u->lo = 0x80;
			u->hi = 0xbf;
			if (b >= 0xc2 && b <= 0xdf) {
				u->need = 1;
			} else if (b >= 0xe0 && b <= 0xef) {
				u->need = 2;
				if (b == 0xe0)
					u->lo = 0xa0; /* no overlong forms */
				else if (b == 0xed)
					u->hi = 0x9f; /* no surrogates */
			} else if (b >= 0xf0 && b <= 0xf4) {
				u->need = 3;
				if (b == 0xf0)
					u->lo = 0x90;
				else if (b == 0xf4)
					u->hi = 0x8f; /* up to U+10FFFF */
			} else {
				return false;
			}
			continue;
		}
		if (b < u->lo || b > u->hi)
			return false;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xbf;
		i++;
	}
	return true;
}

void rill__ws_refuse(struct ws_flow *ws, uint16_t code, const char *why)
{
	if (!ws->refused && ws->rd_enabled)
		rill_flow_set_errmsg(&ws->layer.base,
		                     "WebSocket: %s (Close %u)", why, code);
	ws->refused = true;
	ws->rd_enabled = false;
	wslay_event_queue_close(ws->ctx, code, NULL, 0);
}

/* 16 bytes as one value: SSE2 on x86-64, NEON on arm64 (GCC and Clang
 * vector extensions; plain C elsewhere would do the same in halves). */
typedef uint64_t ws_v16 __attribute__((vector_size(16)));

void rill__ws_mask(uint8_t *dst, const uint8_t *src, size_t n,
                   const uint8_t key[4], size_t phase)
{
	uint8_t k16[16];
	for (size_t i = 0; i < 16; i++)
		k16[i] = key[(phase + i) & 3];
	ws_v16 k;
	memcpy(&k, k16, 16);
	size_t i = 0;
	/* 64 bytes a turn, all read before any is written: dst may lie
	 * below src within the same buffer. */
	for (; i + 64 <= n; i += 64) {
		ws_v16 a, b, c, d;
		memcpy(&a, src + i, 16);
		memcpy(&b, src + i + 16, 16);
		memcpy(&c, src + i + 32, 16);
		memcpy(&d, src + i + 48, 16);
		a ^= k;
		b ^= k;
		c ^= k;
		d ^= k;
		memcpy(dst + i, &a, 16);
		memcpy(dst + i + 16, &b, 16);
		memcpy(dst + i + 32, &c, 16);
		memcpy(dst + i + 48, &d, 16);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ k16[i & 15];
}

static bool ws_close_code_ok(unsigned c)
{
	return (c >= 1000 && c <= 1011 && c != 1004 && c != 1005 &&
	        c != 1006) ||
	       (c >= 3000 && c <= 4999);
}

/* A complete header in ws->sh: check it and start its frame. */
static void ws_frame_start(struct ws_flow *ws, size_t hl, uint64_t len)
{
	const uint8_t *h = ws->sh;
	uint8_t op = h[0] & 0x0f, l7 = h[1] & 0x7f;
	bool fin = h[0] & 0x80, masked = h[1] & 0x80;
	ws->heard = true;
	if (h[0] & 0x70) {
		rill__ws_refuse(ws, 1002, "reserved bits set");
		return;
	}
	if (masked != (ws->role == RILL_WS_SERVER)) {
		rill__ws_refuse(ws, 1002,
		                masked ? "masked frame from a server"
		                       : "unmasked frame from a client");
		return;
	}
	if ((l7 == 126 && len < 126) ||
	    (l7 == 127 && (len < 65536 || len >> 63))) {
		rill__ws_refuse(ws, 1002, "bad frame length");
		return;
	}
	if (op >= 8) {
		if (op > 10) {
			rill__ws_refuse(ws, 1002, "reserved opcode");
			return;
		}
		if (!fin || len > 125) {
			rill__ws_refuse(ws, 1002,
			                "control frame fragmented or "
			                "over 125 bytes");
			return;
		}
	} else {
		if (op > 2) {
			rill__ws_refuse(ws, 1002, "reserved opcode");
			return;
		}
		if ((op == 0) != (ws->msg_op != 0)) {
			rill__ws_refuse(ws, 1002,
			                op == 0 ? "continuation without "
			                          "a message"
			                        : "new message inside a "
			                          "fragmented one");
			return;
		}
		if (op != 0) {
			ws->msg_op = op;
			ws->msg_bytes = 0;
			ws_utf8_reset(&ws->utf8);
		}
		ws->msg_bytes += len;
		if (len > ws->conf.max_message ||
		    ws->msg_bytes > ws->conf.max_message) {
			rill__ws_refuse(ws, 1009, "message over max_message");
			return;
		}
	}
	ws->f_op = op;
	ws->f_fin = fin;
	ws->f_masked = masked;
	if (masked)
		memcpy(ws->f_key, h + hl - 4, 4);
	ws->f_left = len;
	ws->f_phase = 0;
	ws->ctl_len = 0;
	ws->in_frame = true;
}

/* A Close arrived (payload in ws->ctl). */
static void ws_got_close(struct ws_flow *ws)
{
	unsigned code = 1005;
	if (ws->ctl_len == 1) {
		rill__ws_refuse(ws, 1002, "Close of 1 byte");
		return;
	}
	if (ws->ctl_len >= 2) {
		code = (unsigned)ws->ctl[0] << 8 | ws->ctl[1];
		if (!ws_close_code_ok(code)) {
			rill__ws_refuse(ws, 1002, "invalid Close code");
			return;
		}
		struct ws_utf8 u;
		ws_utf8_reset(&u);
		if (!ws_utf8(&u, ws->ctl + 2, ws->ctl_len - 2) || u.need != 0) {
			rill__ws_refuse(ws, 1007, "Close reason not UTF-8");
			return;
		}
	}
	ws->close_received = true;
	ws->close_code = (uint16_t)code;
	ws->rd_enabled = false;
	/* Answered with the same status (RFC 6455 section 5.5.1). */
	wslay_event_queue_close(ws->ctx, code == 1005 ? 0 : (uint16_t)code,
	                        NULL, 0);
}

/* The frame's payload is all in. */
static void ws_frame_end(struct ws_flow *ws)
{
	ws->in_frame = false;
	if (ws->f_op < 8) {
		if (!ws->f_fin)
			return;
		if (ws->msg_op == 1 && ws->utf8.need != 0) {
			rill__ws_refuse(ws, 1007, "text not UTF-8");
			return;
		}
		ws->msg_op = 0;
		return;
	}
	if (ws->f_op == 9) {
		struct wslay_event_msg m = {WSLAY_PONG, ws->ctl, ws->ctl_len};
		wslay_event_queue_msg(ws->ctx, &m); /* not after a Close */
	} else if (ws->f_op == 8) {
		ws_got_close(ws);
	}
}

/* Payload bytes of the current frame: n from p. */
static bool ws_payload(struct ws_flow *ws, const uint8_t *p, size_t n)
{
	uint8_t *dst;
	if (ws->f_op >= 8) {
		dst = ws->ctl + ws->ctl_len;
		ws->ctl_len += n;
	} else if (ws->discard) {
		dst = NULL;
	} else {
		dst = ws->out->data + ws->out_len;
		ws->out_len += n;
	}
	if (dst != NULL) {
		/* dst <= p when dst is in ws->in itself (in_private): the
		 * payload moves down over the headers before it, front to
		 * back, which rill__ws_mask allows. */
		if (ws->f_masked)
			rill__ws_mask(dst, p, n, ws->f_key, ws->f_phase);
		else if (dst != p)
			memmove(dst, p, n);
		if (ws->f_op < 8 && ws->msg_op == 1 &&
		    !ws_utf8(&ws->utf8, dst, n)) {
			rill__ws_refuse(ws, 1007, "text not UTF-8");
			return false;
		}
	} else if (ws->msg_op == 1) {
		/* Discarded text is still checked. */
		uint8_t tmp[4096];
		for (size_t o = 0; o < n; o += sizeof tmp) {
			size_t k = n - o < sizeof tmp ? n - o : sizeof tmp;
			if (ws->f_masked)
				rill__ws_mask(tmp, p + o, k, ws->f_key,
				              ws->f_phase + o);
			else
				memcpy(tmp, p + o, k);
			if (!ws_utf8(&ws->utf8, tmp, k)) {
				rill__ws_refuse(ws, 1007, "text not UTF-8");
				return false;
			}
		}
	}
	ws->f_phase += n;
	ws->f_left -= n;
	return true;
}

bool rill__ws_ctrl_full(const struct ws_flow *ws)
{
	size_t queued = 0;
	if (ws->ctx != NULL)
		queued =
		    wslay_event_get_queued_msg_length(ws->ctx) +
		    WS_CTRL_COST * wslay_event_get_queued_msg_count(ws->ctx);
	return ws->ctrl_len + queued > WS_CTRL_MAX;
}

int rill__ws_parse(struct ws_flow *ws, bool discard)
{
	const uint8_t *p = ws->in->data;
	size_t i = ws->in_off, n = ws->in->len;
	ws->discard = discard;
	if (!discard && ws->out == NULL) {
		/* Payload never exceeds the input it came in. */
		ws->out = ws->in_private ? rill_buf_slice(ws->in, i, n - i)
		                         : rill_buf_new(n - i);
		ws->out_len = 0;
		if (ws->out == NULL)
			return RILL_ENOMEM;
	}
	/* Stops while control frames to send pile up (a ping flood from
	 * a peer that does not read): the rest of the input waits. */
	while (i < n && ws->rd_enabled && !rill__ws_ctrl_full(ws)) {
		if (ws->in_frame) {
			size_t take =
			    n - i < ws->f_left ? n - i : (size_t)ws->f_left;
			if (!ws_payload(ws, p + i, take))
				break;
			i += take;
			if (ws->f_left == 0)
				ws_frame_end(ws);
			continue;
		}
		ws->sh[ws->sh_len++] = p[i++];
		uint64_t len;
		size_t hl = ws_header_len(ws->sh, ws->sh_len, &len);
		if (hl == 0)
			continue;
		ws->sh_len = 0;
		ws_frame_start(ws, hl, len);
		if (ws->in_frame && ws->f_left == 0)
			ws_frame_end(ws);
	}
	ws->in_off = i;
	return 0;
}
