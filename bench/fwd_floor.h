/*
 * The floor for `rill bench relay`: a plain forwarder with two blocking
 * threads per connection (bench/fwd_floor.c).
 */
#ifndef RILL_BENCH_FWD_FLOOR_H
#define RILL_BENCH_FWD_FLOOR_H

#include <netinet/in.h>

/* Accepts on the listening socket lfd forever; every connection is
 * forwarded to target, both ways, by two threads doing read(2)/write(2)
 * of FWD_FLOOR_BUF bytes, a write shutdown carried across at EOF. Returns
 * only on an accept error (-errno). */
int fwd_floor_run(int lfd, const struct sockaddr_in *target);

#define FWD_FLOOR_BUF (128 * 1024)

#endif
