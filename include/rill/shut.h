/*
 * rill/shut.h - the shut layer: lossless half-close and close over any
 * flow. Included by rill.h; do not include directly.
 *
 * Some transports lose data on shutdown or close: Hyper-V sockets did, and
 * the hybrid-vsock muxers of Firecracker, Cloud Hypervisor and
 * vhost-device turn a host's half-close into a full shutdown. The shut
 * layer frames the byte stream so that shutdown and close become messages
 * in the stream itself (ocaml-hvsock's Flow_shutdown, wire-compatible with
 * it and with linuxkit's virtsock; doc/shut-framing.md):
 *
 *   rill_shutdown(WR)   sends ShutdownWrite; the peer's reads report EOF
 *                       after every byte sent before it.
 *   rill_shutdown(RD)   sends ShutdownRead; the peer's later writes fail
 *                       with RILL_ECLOSED.
 *   rill_close          sends Close, then in the background drains the
 *                       peer's data until its Close, ShutdownRead or EOF
 *                       (or the close deadline), then closes the flow
 *                       below. Only then may the transport drop what is
 *                       in flight: the peer has seen everything.
 *
 * Both ends must speak the layer. Errors particular to it: a read fails
 * with RILL_EFRAME when the peer sends a length >= 2^31 that is not a
 * message, or hangs up inside a frame (rill_flow_errmsg says which).
 * Resets of the flow below during the close drain are absorbed.
 */
#ifndef RILL_SHUT_H
#define RILL_SHUT_H

#ifdef __cplusplus
extern "C" {
#endif

/* The close-handshake deadline used unless set otherwise, in ms. */
#define RILL_SHUT_CLOSE_TIMEOUT_MS 5000u

/*
 * Attaches the shut layer over inner and stores the new flow in *out.
 * Consumes inner, even on failure: closing the result closes inner.
 * Returns 0, or RILL_EINVAL (inner or out NULL; inner, if given, is
 * closed), RILL_ENOMEM (inner closed).
 */
RILL_EXTERN int rill_shut_attach(struct rill_flow *inner,
                                 struct rill_flow **out);

/*
 * Sets the deadline of f's close handshake: how long rill_close(f) may
 * wait in the background for the peer's answer before closing the flow
 * below anyway. 0 means no deadline (wait for the peer or EOF). Default
 * RILL_SHUT_CLOSE_TIMEOUT_MS. Returns 0, RILL_EINVAL (f NULL or not a shut
 * flow) or RILL_ECLOSED.
 */
RILL_EXTERN int rill_shut_set_close_timeout(struct rill_flow *f, uint64_t ms);

#ifdef __cplusplus
}
#endif

#endif /* RILL_SHUT_H */
