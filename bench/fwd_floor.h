/*
 * The floors for `rill bench relay`: a plain forwarder with two blocking
 * threads per connection, copying or splicing (bench/fwd_floor.c).
 */
#ifndef RILL_BENCH_FWD_FLOOR_H
#define RILL_BENCH_FWD_FLOOR_H

#include <netinet/in.h>
#include <stdbool.h>

/* Accepts on the listening socket lfd forever; every connection is
 * forwarded to target, both ways, by two threads doing read(2)/write(2)
 * of FWD_FLOOR_BUF bytes (with splice: splice(2) through a pipe, tuned as
 * rill's splice path between local connections), a write shutdown carried
 * across at EOF. Returns only on an accept error (-errno). */
int fwd_floor_run(int lfd, const struct sockaddr_in *target, bool splice);

#define FWD_FLOOR_BUF (128 * 1024)

#endif
