/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * base.h - the few definitions every userspace module shares.
 *
 * Assertions come in two strengths (DESIGN.md 8.7): ASSERT() is for cheap-to-state
 * invariants of our own code and compiles out unless DEBUG is defined; VERIFY() guards
 * conditions whose violation would corrupt data and never compiles out.  Neither is used for
 * conditions that bad input (a disk block, a wire message, a delta stream) can cause: those
 * return -EILSEQ, -EPROTO, ... to the caller.
 *
 * Error convention, project-wide (negative errno, propagated unchanged):
 *   -ENODATA  not found            -EILSEQ   corrupt (checksum, magic, structure)
 *   -ENOTBLK  misplaced block      -ENOSPC   out of space
 *   -EPROTO   bad wire message     -ESTALE   old txg / generation
 *   -EWOULDBLOCK would block       -EINVAL   bad argument from a caller
 * errmsg() turns one into words for a person: these meanings, not libc's (strerror(EILSEQ)
 * is about multibyte characters).
 */
#ifndef DDSNAP_BASE_H
#define DDSNAP_BASE_H

#include <assert.h>
#include <pthread.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef int64_t s64;

#define ARRAY_SIZE(a)			(sizeof(a) / sizeof((a)[0]))
#define DIV_ROUND_UP(n, d)		(((n) + (d)-1) / (d))
#define ROUND_UP(n, a)			(DIV_ROUND_UP(n, a) * (a))
#define MIN(a, b)			((a) < (b) ? (a) : (b))
#define MAX(a, b)			((a) > (b) ? (a) : (b))
#define IS_POWER_OF_2(x)		((x) != 0 && (((x) & ((x)-1)) == 0))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define likely(x)			__builtin_expect(!!(x), 1)
#define unlikely(x)			__builtin_expect(!!(x), 0)
#define __must_check			__attribute__((warn_unused_result))
#define __printf(a, b)			__attribute__((format(printf, a, b)))
#define __noreturn			__attribute__((noreturn))

void base_verify_failed(const char *expr, const char *file, int line) __noreturn;

#define VERIFY(expr)                                                   \
	do {                                                           \
		if (unlikely(!(expr)))                                 \
			base_verify_failed(#expr, __FILE__, __LINE__); \
	} while (0)

#ifdef DEBUG
#define ASSERT(expr) VERIFY(expr)
#else
#define ASSERT(expr) ((void)0)
#endif

/* Little-endian on-disk/wire conversion; used only in the pack and unpack helpers. */
static inline __le16 cpu_to_le16(u16 v)
{
	return (__le16)htole16(v);
}
static inline __le32 cpu_to_le32(u32 v)
{
	return (__le32)htole32(v);
}
static inline __le64 cpu_to_le64(u64 v)
{
	return (__le64)htole64(v);
}
static inline u16 le16_to_cpu(__le16 v)
{
	return le16toh((u16)v);
}
static inline u32 le32_to_cpu(__le32 v)
{
	return le32toh((u32)v);
}
static inline u64 le64_to_cpu(__le64 v)
{
	return le64toh((u64)v);
}

/*
 * Multiplicative (Fibonacci) hashing, Knuth 6.4: @x times 2^64 / golden ratio.  The high bits
 * of the product are the well-mixed ones: a table of 2^k slots takes bits from the top.
 * In-memory hash tables only (tags, block numbers, VCDIFF match keys); nothing on disk.
 */
static inline u64 hash_golden64(u64 x)
{
	return x * 0x9E3779B97F4A7C15ULL;
}

/*
 * xorshift64 (Marsaglia): advances the nonzero state *@s and returns it.  Tests, stress
 * programs and benchmarks draw their seeded workloads from it; nothing on disk depends on it.
 */
static inline u64 xorshift64(u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * The value of @expr evaluated once with the pthread mutex @lock held: a getter's snapshot
 * of a field that other threads change under that lock, as in
 * `return READ_LOCKED(&s->lock, s->open_txg);`.  The caller includes <pthread.h>.
 */
#define READ_LOCKED(lock, expr)                  \
	({                                       \
		__typeof__(expr) read_locked_v_; \
		pthread_mutex_lock(lock);        \
		read_locked_v_ = (expr);         \
		pthread_mutex_unlock(lock);      \
		read_locked_v_;                  \
	})

/*
 * Writes a printf-formatted reason into @why (if @why and @whylen are non-zero) and returns
 * @err, so a failure path reads `return why_printf(why, whylen, -EILSEQ, "...", ...)`.
 */
int why_printf(char *why, size_t whylen, int err, const char *fmt, ...) __printf(4, 5);

/*
 * A short phrase for the negative errno @err in the meaning above (for -EILSEQ "metadata
 * damaged (checksum, magic or structure)", for -ENOTBLK "misplaced block (read from the
 * wrong address)", ...), strerror() for the rest.  Never NULL.  Thread-safe.
 */
const char *errmsg(int err);

/*
 * Writes all @len bytes of @buf to @fd, retrying short writes and EINTR.  Returns 0 or
 * -errno of the failing write (bytes before it were written).  Blocks.  Sockets that must
 * not raise SIGPIPE use unixsock_write_full (send with MSG_NOSIGNAL) instead.
 */
int write_full(int fd, const void *buf, size_t len);
/* write_full() through @op (write(2), or a wrapper of send(2) with its flags). */
int write_full_op(int fd, const void *buf, size_t len,
		  ssize_t (*op)(int fd, const void *buf, size_t len));

/* Allocation that cannot fail quietly: aborts with a message on exhaustion. */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);

/*
 * The stack of every thread the server starts.  glibc's default (RLIMIT_STACK, 8 MiB) is
 * kept resident by the server's mlockall, so its 13 fixed threads (4 workers, 8 copiers,
 * the txg sync) held 104 MiB whatever the store's size, and 400 idle connections 3.3 GB.
 * Measured need (stacks painted, then scanned when the thread ends, over test_server,
 * test_replicate and create/list/status/delete/send by the CLI): at most 55 KiB, a kernel
 * connection (a wire_msg and a packed message on the stack); CLI calls 47 KiB.  256 KiB
 * leaves over four times that for deeper trees and libc.
 */
#define THREAD_STACK_BYTES (256u << 10)

/*
 * pthread_create(@t, @fn, @arg) with a THREAD_STACK_BYTES stack, joinable or @detached.
 * Returns 0 or the positive error number of pthread_create.
 */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg, bool detached);

#endif /* DDSNAP_BASE_H */
