/*
 * pinhole-nfnl: relays nf_tables set-element batches from pinhole-fcpd to the kernel over a
 * NETLINK_NETFILTER socket, and returns the kernel's per-message acknowledgements. The daemon
 * uses it when the in-process addon (pinhole-nfnl-addon.c) cannot serve, e.g. when nft runs
 * through a wrapper such as sudo.
 *
 * The daemon builds the netlink messages (see src/nfnl.ts); the exchange with the kernel is
 * nfnl-core.h's.
 *
 * Protocol on stdin/stdout, all integers little-endian (the daemon runs on the same host):
 *   request:  u32 length of the batch, u32 request id, batch bytes
 *   reply:    u32 record count, u32 request id, count x { u32 seq, i32 error, u32 offset }
 *             error is 0 or a negative errno; offset is the byte offset of the attribute the
 *             kernel blamed (extended ACK) inside the message, or 0xffffffff.
 * A reply with one record of seq 0 reports a failure of the channel itself (send, receive,
 * refused batch, timeout). EOF on stdin ends the program with status 0.
 *
 * Only libc and the kernel's UAPI headers are needed:  cc -O2 -o pinhole-nfnl pinhole-nfnl.c
 */
#include "nfnl-core.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#define ACK_TIMEOUT_MS 10000

static int nl;
static unsigned char *batch;
static struct nfnl_record records[NFNL_MAX_RECORDS];

/* Moves n bytes through fd, in either direction, across short transfers and EINTR. Returns 1
 * when all moved, 0 at EOF before the first byte of a read, -1 on error or EOF midway. */
static int move_full(int fd, void *p, size_t n, int reading)
{
	unsigned char *b = p;
	size_t done = 0;
	while (done < n) {
		ssize_t r = reading ? read(fd, b + done, n - done) : write(fd, b + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r == 0 && reading))
			return r == 0 && done == 0 ? 0 : -1;
		done += (size_t)r;
	}
	return 1;
}

static int reply(uint32_t id, const struct nfnl_record *rec, uint32_t count)
{
	uint32_t head[2] = { count, id };
	if (move_full(STDOUT_FILENO, head, sizeof head, 0) < 0)
		return -1;
	return count == 0 ? 0 : move_full(STDOUT_FILENO, (void *)rec, count * sizeof *rec, 0);
}

static int run_batch(uint32_t id, uint32_t len)
{
	uint32_t count;
	int err = nfnl_exchange(nl, batch, len, ACK_TIMEOUT_MS, records, &count);
	if (err != 0) {
		struct nfnl_record r = { 0, -err, NFNL_NO_OFFSET };
		return reply(id, &r, 1);
	}
	return reply(id, records, count);
}

int main(void)
{
	nl = nfnl_open_socket();
	if (nl < 0) {
		fprintf(stderr, "pinhole-nfnl: netlink socket: %s\n", strerror(errno));
		return 2;
	}
	/* A transaction of a few thousand operations is a few hundred KiB: a pipe larger than the
	 * default 64 KiB takes it in one write(2) of the daemon, without partial writes. Best
	 * effort (the limit is /proc/sys/fs/pipe-max-size). */
	fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
	batch = malloc(NFNL_MAX_BATCH);
	if (batch == NULL)
		return 2;
	/* Announce readiness: an empty reply with id 0. */
	if (reply(0, NULL, 0) < 0)
		return 3;
	for (;;) {
		uint32_t head[2];
		int r = move_full(STDIN_FILENO, head, sizeof head, 1);
		if (r == 0)
			return 0;
		if (r < 0 || head[0] > NFNL_MAX_BATCH)
			return 4;
		if (move_full(STDIN_FILENO, batch, head[0], 1) != 1)
			return 4;
		if (run_batch(head[1], head[0]) < 0)
			return 3;
	}
}
