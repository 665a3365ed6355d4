// SPDX-License-Identifier: GPL-2.0-only
/*
 * zumastor-helper.c - the exact logic of the zumastor monitor, for its shell script:
 * config values, snapshot names, the schedule plan (due, retention, priorities, reasons) and
 * NFS fsids.  The logic lives in monitor/lib (zconf, zsched, zfsid), where the unit tests
 * exercise it; this file only parses arguments and prints.
 *
 *	zumastor-helper volume-name <vol>
 *	zumastor-helper check <setting> <value>		prints the canonical value
 *	zumastor-helper read <setting> <file>...	reads, validates, prints the value
 *	zumastor-helper name <seconds>...		the @GMT name of a UTC time
 *	zumastor-helper time <@GMT name>		and back
 *	zumastor-helper plan --now T [schedule options]	snapshots on stdin (below)
 *	zumastor-helper fsid <volume uuid> <@GMT name|origin>
 *	zumastor-helper fsid-free <fsid> <own export path|-> [file...]
 *	zumastor-helper identify <device>		what a device holds (below)
 *	zumastor-helper devname <vol> <@GMT name|origin>	the device-mapper name
 *	zumastor-helper target-plan --now T [target options]	one replication target (below)
 *	zumastor-helper replica-holds [--named T] [--token FROM:TO]	what a replica keeps
 *
 * plan reads one snapshot a line, "<@GMT name or UTC seconds> [held] [base]" (base: a
 * replication base, zplan.h, kept like a held one), and prints
 *	due <kind,kind|->		whether to take a snapshot at --now, and for which kinds
 *	next <seconds>			when one is due next if none is taken (-1: no schedule)
 *	snap <name> <seconds> keep|prune <priority> <kind,kind|-> <why>
 *					one line per snapshot, in the order read
 * Schedule options: --frequent MIN:COUNT --hourly N --daily N --weekly N --monthly N, each
 * validated as the config file would be.
 *
 * target-plan (zp_plan, doc/replication.md) reads "sender <seconds> <uuid> <gen>" and
 * "replica <seconds> <uuid> <gen> [aside]" lines; its options are the target's state:
 * --period S (0: after each snapshot), --inflight T, --last-good T, --last-good-at T,
 * --failures N, --last-failure-at T, --token FROM:TO, --written, --manual, --force.  It
 * prints "action", "reason", "base", "from", "to", "next", "conflict", "behind", "lag" (one
 * word each), "hold <seconds>" per snapshot the sender keeps (zp_sender_needs) and "why
 * <text>" last.  replica-holds reads the replica's own "replica ..." lines and prints
 * "hold <seconds>" per snapshot it keeps (zp_replica_needs).
 *
 * identify prints "snapstore <uuid>" or "metadev <uuid>" for a device carrying a ddsnap
 * store label (either copy), "damaged <reason>" for one whose label is there but broken,
 * and "none" otherwise (the script asks blkid about filesystems), so that define volume can
 * recognise every device before writing anything and refuse a swapped pair.
 *
 * read takes any number of <setting> <file> pairs and name any number of times (a volume's
 * settings, a replica's snapshots: one run, not one per value; a run costs a tenth of a
 * second in a guest under TCG).  Each prints one value a line, in the order given, and stops
 * at the first it refuses: the lines printed before the refusal tell the caller which.
 *
 * Exit status: 0 done, 1 refused (the message on stderr says what and why), 2 usage.
 * No state, no locking: the shell script holds the volume lock around whatever it decides.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "blk/bdev.h"
#include "store/label.h"
#include "zconf.h"
#include "zfsid.h"
#include "zplan.h"
#include "zsched.h"

enum { OK = 0, FAIL = 1, USAGE = 2 };

static const char usage_text[] =
	"usage: zumastor-helper volume-name <vol>\n"
	"       zumastor-helper check <setting> <value>\n"
	"       zumastor-helper read <setting> <file> [<setting> <file>]...\n"
	"       zumastor-helper name <seconds>...\n"
	"       zumastor-helper time <@GMT-YYYY.MM.DD-HH.MM.SS>\n"
	"       zumastor-helper plan --now <seconds> [--frequent MIN:COUNT] [--hourly N] [--daily "
	"N] [--weekly N] [--monthly N] < snapshots\n"
	"       zumastor-helper fsid <volume uuid> <@GMT name|origin>\n"
	"       zumastor-helper fsid-free <fsid> <own export path|-> [exports file...]\n"
	"       zumastor-helper identify <device>\n"
	"       zumastor-helper devname <vol> <@GMT name|origin>\n"
	"       zumastor-helper target-plan --now <seconds> [--period S] [--inflight T] "
	"[--last-good T] [--last-good-at T] [--failures N] [--last-failure-at T] [--token "
	"FROM:TO] [--written] [--manual] [--force] < snapshots\n"
	"       zumastor-helper replica-holds [--named T] [--token FROM:TO] < snapshots\n";

static int usage(void)
{
	fputs(usage_text, stderr);
	return USAGE;
}

/* @v for an error message: control characters and non-ASCII as \ooo, at most 80 shown. */
static void show_value(FILE *f, const char *v)
{
	int n = 0;

	fputc('\'', f);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++, n++) {
		if (n == 80) {
			fputs("...", f);
			break;
		}
		if (*p < 0x20 || *p >= 0x7f || *p == '\\' || *p == '\'')
			fprintf(f, "\\%03o", *p);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

static void refuse(const char *where, const char *value, const char *allowed)
{
	fprintf(stderr, "zumastor: %s: ", where);
	show_value(stderr, value);
	fprintf(stderr, " is not allowed: %s\n", allowed);
}

static int check_value(const char *where, const char *setting, const char *value)
{
	char out[ZCONF_VALUE_MAX];
	const char *allowed;
	int err = zconf_check(setting, value, out, sizeof(out), &allowed);

	if (err == -ENOENT) {
		fprintf(stderr, "zumastor-helper: unknown setting '%s': %s\n", setting, allowed);
		return USAGE;
	}
	if (err) {
		refuse(where, value, allowed);
		return FAIL;
	}
	puts(out);
	return OK;
}

/*
 * Reads a setting file: one line, at most ZCONF_VALUE_MAX - 1 bytes, a final newline
 * optional, no NUL and no second line.  Returns 0 with the value in @buf, or prints why not.
 */
static int read_setting(const char *file, char *buf, size_t len)
{
	FILE *f = fopen(file, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "zumastor: %s: cannot read: %s\n", file, strerror(errno));
		return FAIL;
	}
	n = fread(buf, 1, len - 1, f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "zumastor: %s: %s\n", file,
			ferror(f) ? strerror(errno) : "longer than any allowed value");
		fclose(f);
		return FAIL;
	}
	fclose(f);
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	if (memchr(buf, 0, n) || strchr(buf, '\n')) {
		fprintf(stderr,
			"zumastor: %s: more than one line, or a NUL byte: a setting is one "
			"line\n",
			file);
		return FAIL;
	}
	return OK;
}

static int parse_seconds(const char *s, int64_t *t)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < 0) {
		fprintf(stderr, "zumastor-helper: '%s' is not a time in seconds since the epoch\n",
			s);
		return -EINVAL;
	}
	*t = v;
	return 0;
}

static int cmd_plan(int argc, char **argv)
{
	static const char *const opt[ZS_KINDS] = {"--frequent", "--hourly", "--daily", "--weekly",
						  "--monthly"};
	struct zs_schedule s = {{0}, 0};
	struct zs_snap *snaps = NULL;
	size_t n = 0, cap = 0;
	int64_t now = -1, next;
	char line[256];
	uint32_t due;
	int rc = OK;

	for (int i = 1; i < argc; i += 2) {
		char out[ZCONF_VALUE_MAX], setting[32];
		const char *allowed;
		int k;

		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--now")) {
			if (parse_seconds(argv[i + 1], &now))
				return USAGE;
			continue;
		}
		for (k = 0; k < ZS_KINDS && strcmp(argv[i], opt[k]); k++)
			;
		if (k == ZS_KINDS)
			return usage();
		snprintf(setting, sizeof(setting), "schedule/%s", zs_kind_name(k));
		if (zconf_check(setting, argv[i + 1], out, sizeof(out), &allowed)) {
			refuse(argv[i], argv[i + 1], allowed);
			return USAGE;
		}
		if (k == ZS_FREQUENT)
			sscanf(out, "%u:%u", &s.frequent_min, &s.count[k]);
		else
			s.count[k] = (uint32_t)strtoul(out, NULL, 10);
	}
	if (now < 0)
		return usage();
	while (fgets(line, sizeof(line), stdin)) {
		char name[64], flag[2][16];
		bool held = false, base = false, flags_ok = true;
		int64_t t;
		int got, used = 0;

		line[strcspn(line, "\n")] = 0;
		got = sscanf(line, "%63s %15s %15s", name, flag[0], flag[1]);
		if (got < 1)
			continue;
		for (int f = 0; f + 1 < got; f++) {
			if (!strcmp(flag[f], "held"))
				held = true;
			else if (!strcmp(flag[f], "base"))
				base = true;
			else
				flags_ok = false;
		}
		if ((zs_parse_name(name, &t) &&
		     (sscanf(name, "%" SCNd64 "%n", &t, &used) != 1 || name[used] ||
		      t < ZS_TIME_MIN || t > ZS_TIME_MAX)) ||
		    !flags_ok) {
			fprintf(stderr,
				"zumastor-helper: bad snapshot line '%s': '<@GMT name or UTC "
				"seconds> [held] [base]'\n",
				line);
			rc = FAIL;
			goto out;
		}
		if (n == cap) {
			struct zs_snap *more;

			cap = cap ? 2 * cap : 64;
			more = realloc(snaps, cap * sizeof(*snaps));
			if (!more) {
				fprintf(stderr, "zumastor-helper: out of memory\n");
				rc = FAIL;
				goto out;
			}
			snaps = more;
		}
		snaps[n++] = (struct zs_snap){.time = t, .held = held, .base = base};
	}
	if (zs_retain(&s, snaps, n)) {
		fprintf(stderr, "zumastor-helper: two snapshots with the same name\n");
		rc = FAIL;
		goto out;
	}
	due = zs_due(&s, snaps, n, now);
	next = zs_next_due(&s, snaps, n, now);
	printf("due ");
	for (int k = 0, first = 1; k < ZS_KINDS; k++)
		if (due & (1u << k)) {
			printf("%s%s", first ? "" : ",", zs_kind_name(k));
			first = 0;
		}
	printf("%s\nnext %lld\n", due ? "" : "-", (long long)next);
	for (size_t i = 0; i < n; i++) {
		char name[ZS_NAME_LEN], why[256];

		zs_name(snaps[i].time, name);
		printf("snap %s %lld %s %d ", name, (long long)snaps[i].time,
		       snaps[i].prune ? "prune" : "keep", zs_priority(snaps[i].keep));
		for (int k = 0, first = 1; k < ZS_KINDS; k++)
			if (snaps[i].keep & (1u << k)) {
				printf("%s%s", first ? "" : ",", zs_kind_name(k));
				first = 0;
			}
		printf("%s %s\n", snaps[i].keep ? "" : "-",
		       zs_why(&snaps[i], &s, why, sizeof(why)));
	}
out:
	free(snaps);
	return rc;
}

static int cmd_fsid_free(int argc, char **argv)
{
	uint8_t fsid[16];
	const char *skip = strcmp(argv[2], "-") ? argv[2] : NULL;

	if (zconf_parse_uuid(argv[1], fsid)) {
		fprintf(stderr, "zumastor-helper: '%s' is not a uuid\n", argv[1]);
		return USAGE;
	}
	for (int i = 3; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		char *text = NULL, clash[1024];
		size_t len = 0;
		int err;

		if (!f) {
			if (errno == ENOENT)
				continue;
			fprintf(stderr, "zumastor: %s: %s\n", argv[i], strerror(errno));
			return FAIL;
		}
		{
			FILE *m = open_memstream(&text, &len);
			char buf[4096];
			size_t got;

			while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
				fwrite(buf, 1, got, m);
			fclose(m);
		}
		fclose(f);
		err = zfsid_check_free(text, fsid, skip, clash, sizeof(clash));
		free(text);
		if (err) {
			fprintf(stderr,
				"zumastor: fsid %s is already used by the export of %s in %s\n",
				argv[1], clash, argv[i]);
			return FAIL;
		}
	}
	return OK;
}

static int cmd_identify(const char *dev)
{
	struct bdev *b;
	struct label l;
	char why[256], uuid[37];
	int err = bdev_open(dev, BDEV_RDONLY | BDEV_BUFFERED, &b);

	if (err) {
		fprintf(stderr, "zumastor: cannot open %s: %s\n", dev, strerror(-err));
		return FAIL;
	}
	err = label_read(b, -1, &l, why, sizeof(why));
	bdev_close(b);
	if (err == -ENODATA) {
		puts("none");
		return OK;
	}
	if (err == -EIO) {
		fprintf(stderr, "zumastor: cannot read %s: %s\n", dev, why);
		return FAIL;
	}
	if (err) {
		printf("damaged %s\n", why);
		return OK;
	}
	zconf_format_uuid(l.uuid, uuid);
	printf("%s %s\n", l.role == LABEL_ROLE_METADEV ? "metadev" : "snapstore", uuid);
	return OK;
}

/* A whole number >= 0 for option @opt, into *@v. */
static int parse_count(const char *opt, const char *s, int64_t *v)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (!*s || *end || errno || n < 0) {
		fprintf(stderr, "zumastor-helper: %s '%s' is not a whole number\n", opt, s);
		return -EINVAL;
	}
	*v = n;
	return 0;
}

static int parse_token(const char *s, struct zp_token *t)
{
	long long from, to;
	int used = 0;

	if (sscanf(s, "%lld:%lld%n", &from, &to, &used) != 2 || s[used] || from < 0 || to < 0) {
		fprintf(stderr, "zumastor-helper: --token '%s' is not FROM:TO (seconds)\n", s);
		return -EINVAL;
	}
	*t = (struct zp_token){from, to};
	return 0;
}

/* The snapshot lines of target-plan and replica-holds into @sender and @replica. */
static int read_zp_snaps(struct zp_snap **sender, size_t *ns, struct zp_snap **replica, size_t *nr)
{
	char line[256];
	size_t cs = 0, cr = 0;

	*sender = *replica = NULL;
	*ns = *nr = 0;
	while (fgets(line, sizeof(line), stdin)) {
		char side[16], uuid[64], flag[16];
		long long t;
		unsigned long long gen;
		struct zp_snap s = {0};
		struct zp_snap **arr;
		size_t *n, *cap;
		int got;

		line[strcspn(line, "\n")] = 0;
		got = sscanf(line, "%15s %lld %63s %llu %15s", side, &t, uuid, &gen, flag);
		if (got <= 0)
			continue;
		if (got < 4 || t < 1 || zconf_parse_uuid(uuid, s.uuid) ||
		    (strcmp(side, "sender") && strcmp(side, "replica")) ||
		    (got == 5 && (strcmp(flag, "aside") || strcmp(side, "replica")))) {
			fprintf(stderr,
				"zumastor-helper: bad snapshot line '%s': 'sender|replica "
				"<seconds> "
				"<uuid> <gen> [aside]'\n",
				line);
			return FAIL;
		}
		s.time = t;
		s.gen = gen;
		s.aside = got == 5;
		arr = side[0] == 's' ? sender : replica;
		n = side[0] == 's' ? ns : nr;
		cap = side[0] == 's' ? &cs : &cr;
		if (*n == *cap) {
			struct zp_snap *more;

			*cap = *cap ? 2 * *cap : 64;
			more = realloc(*arr, *cap * sizeof(**arr));
			if (!more) {
				fprintf(stderr, "zumastor-helper: out of memory\n");
				return FAIL;
			}
			*arr = more;
		}
		(*arr)[(*n)++] = s;
	}
	return OK;
}

static int cmd_target_plan(int argc, char **argv)
{
	struct zp_target t = {0};
	struct zp_snap *sender, *replica;
	struct zp_plan p;
	int64_t now = -1, v, needs[ZP_NEEDS_MAX];
	size_t n;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--written")) {
			t.replica_written = true;
			continue;
		}
		if (!strcmp(o, "--manual")) {
			t.manual = true;
			continue;
		}
		if (!strcmp(o, "--force")) {
			t.force_full = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		i++;
		if (!strcmp(o, "--token")) {
			if (parse_token(argv[i], &t.token))
				return USAGE;
			continue;
		}
		if (parse_count(o, argv[i], &v))
			return USAGE;
		if (!strcmp(o, "--now"))
			now = v;
		else if (!strcmp(o, "--period") && v <= UINT32_MAX)
			t.period = (uint32_t)v;
		else if (!strcmp(o, "--inflight"))
			t.inflight = v;
		else if (!strcmp(o, "--last-good"))
			t.last_good = v;
		else if (!strcmp(o, "--last-good-at"))
			t.last_good_at = v;
		else if (!strcmp(o, "--failures") && v <= UINT32_MAX)
			t.failures = (uint32_t)v;
		else if (!strcmp(o, "--last-failure-at"))
			t.last_failure_at = v;
		else
			return usage();
	}
	if (now < 0)
		return usage();
	rc = read_zp_snaps(&sender, &t.nsender, &replica, &t.nreplica);
	if (rc)
		goto out;
	t.sender = sender;
	t.replica = replica;
	if (zp_plan(&t, now, &p)) {
		fprintf(stderr, "zumastor-helper: %s\n", p.why);
		rc = FAIL;
		goto out;
	}
	printf("action %s\nreason %s\nbase %lld\nfrom %lld\nto %lld\nnext %lld\nconflict %lld\n"
	       "behind %u\nlag %lld\n",
	       zp_action_name(p.action), zp_reason_name(p.reason), (long long)p.base,
	       (long long)p.from, (long long)p.to, (long long)p.next, (long long)p.conflict,
	       p.behind, (long long)p.lag);
	n = zp_sender_needs(&t, needs);
	for (size_t i = 0; i < n; i++)
		printf("hold %lld\n", (long long)needs[i]);
	printf("why %s\n", p.why);
out:
	free(sender);
	free(replica);
	return rc;
}

static int cmd_replica_holds(int argc, char **argv)
{
	struct zp_snap *sender, *replica;
	struct zp_token token = {0, 0};
	int64_t named = 0, *out = NULL;
	size_t ns, nr, n;
	int rc;

	for (int i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--token")) {
			if (parse_token(argv[i + 1], &token))
				return USAGE;
		} else if (!strcmp(argv[i], "--named")) {
			if (parse_count(argv[i], argv[i + 1], &named))
				return USAGE;
		} else {
			return usage();
		}
	}
	rc = read_zp_snaps(&sender, &ns, &replica, &nr);
	if (!rc && !(out = calloc(nr + 2, sizeof(*out)))) {
		fprintf(stderr, "zumastor-helper: out of memory\n");
		rc = FAIL;
	}
	if (!rc) {
		n = zp_replica_needs(replica, nr, token, named, out, nr + 2);
		for (size_t i = 0; i < n && i < nr + 2; i++)
			printf("hold %lld\n", (long long)out[i]);
	}
	free(out);
	free(sender);
	free(replica);
	return rc;
}

int main(int argc, char **argv)
{
	const char *allowed;
	char buf[ZCONF_VALUE_MAX];

	tzset();
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, stdout);
		return OK;
	}
	if (!strcmp(argv[1], "volume-name") && argc == 3) {
		if (zconf_volume_name(argv[2], &allowed)) {
			refuse("volume name", argv[2], allowed);
			return FAIL;
		}
		return OK;
	}
	if (!strcmp(argv[1], "check") && argc == 4)
		return check_value(argv[2], argv[2], argv[3]);
	if (!strcmp(argv[1], "read") && argc >= 4 && argc % 2 == 0) {
		for (int i = 2; i < argc; i += 2) {
			int rc;

			if (read_setting(argv[i + 1], buf, sizeof(buf)))
				return FAIL;
			rc = check_value(argv[i + 1], argv[i], buf);
			if (rc)
				return rc;
		}
		return OK;
	}
	if (!strcmp(argv[1], "name") && argc >= 3) {
		char name[ZS_NAME_LEN];
		int64_t t;

		for (int i = 2; i < argc; i++) {
			if (parse_seconds(argv[i], &t))
				return USAGE;
			if (zs_name(t, name)) {
				fprintf(stderr,
					"zumastor-helper: %s is out of range for a snapshot name "
					"(1 to %lld)\n",
					argv[i], (long long)ZS_TIME_MAX);
				return FAIL;
			}
			puts(name);
		}
		return OK;
	}
	if (!strcmp(argv[1], "time") && argc == 3) {
		int64_t t;

		if (zs_parse_name(argv[2], &t)) {
			refuse("snapshot name", argv[2],
			       "@GMT-YYYY.MM.DD-HH.MM.SS, a real UTC date and time");
			return FAIL;
		}
		printf("%lld\n", (long long)t);
		return OK;
	}
	if (!strcmp(argv[1], "plan"))
		return cmd_plan(argc - 1, argv + 1);
	if (!strcmp(argv[1], "target-plan"))
		return cmd_target_plan(argc - 1, argv + 1);
	if (!strcmp(argv[1], "replica-holds"))
		return cmd_replica_holds(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fsid") && argc == 4) {
		uint8_t vol[16], fsid[16];
		char out[37];
		int64_t t = 0;

		if (zconf_parse_uuid(argv[2], vol)) {
			refuse("volume uuid", argv[2], "32 hexadecimal digits");
			return FAIL;
		}
		if (strcmp(argv[3], "origin") && zs_parse_name(argv[3], &t)) {
			refuse("snapshot", argv[3], "origin or @GMT-YYYY.MM.DD-HH.MM.SS");
			return FAIL;
		}
		zfsid_derive(vol, strcmp(argv[3], "origin") ? (uint64_t)t : ZFSID_ORIGIN, fsid);
		zconf_format_uuid(fsid, out);
		puts(out);
		return OK;
	}
	if (!strcmp(argv[1], "devname") && argc == 4) {
		char dev[ZS_DEVNAME_MAX + 1];
		int64_t t = 0;

		if (strcmp(argv[3], "origin") && zs_parse_name(argv[3], &t)) {
			refuse("snapshot", argv[3], "origin or @GMT-YYYY.MM.DD-HH.MM.SS");
			return FAIL;
		}
		if (zs_devname(argv[2], t, dev)) {
			zconf_volume_name(argv[2], &allowed);
			refuse("volume name", argv[2], allowed);
			return FAIL;
		}
		puts(dev);
		return OK;
	}
	if (!strcmp(argv[1], "identify") && argc == 3)
		return cmd_identify(argv[2]);
	if (!strcmp(argv[1], "fsid-free") && argc >= 3)
		return cmd_fsid_free(argc - 1, argv + 1);
	return usage();
}
