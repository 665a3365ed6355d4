# SPDX-License-Identifier: GPL-2.0-only
#
# Zumastor build.  Userspace objects go to $(BUILD) (build/, or build/<sanitizer>/ with
# SANITIZER=address|undefined); the kernel module is built in place by Kbuild.
#
# Modules are found by wildcard so adding one never means editing this file:
#   server/<layer>/*.c     -> $(BUILD)/libddsnap.a   (metadata engine, server, codecs; the
#                                                    layers: doc/HACKING.md, scripts/lint-layers.sh)
#   tools/*.c              -> $(BUILD)/bin/ddsnap    (tools/ddsnap.c holds main(); the
#                                                    other files are its subcommands)
#   monitor/*.c            -> $(BUILD)/bin/<name>    (one small helper program per file)
#   monitor/lib/*.c        -> $(BUILD)/libzumastor.a (the monitor's exact logic: names,
#                                                    config values, retention, fsids,
#                                                    replication plans)
#   tests/unit/test_*.c    -> $(BUILD)/tests/test_*  (one cmocka binary per module)
#   tests/unit/lib/*.c     -> linked into every unit test (models, fixtures)
#   tests/stress/*.c       -> $(BUILD)/tests/stress_*
#   tests/fuzz/fuzz_*.c    -> build/fuzz/fuzz_*      (clang libFuzzer + ASan/UBSan)
#   bench/bench_*.c        -> $(BUILD)/bench/bench_*
#   bench/kwrite.c         -> $(BUILD)/bench/kwrite  (origin writes the kernel's way, big-origin.sh)
#
# Fixed target names (other parts rely on them): all deps unit vm-test check lint bench demo
# fresh-test install clean (and cli, monitor: the command-line suites on plain files; deb,
# deb-check: the Debian packages and their lintian check).

SHELL := /bin/bash
CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
PKGS := libtirpc libzstd devmapper zlib blkid
PREFIX ?= /usr/local
DESTDIR ?=

# The running kernel here is not Debian's: take the newest installed headers, not uname -r.
KDIR ?= $(lastword $(sort $(wildcard /lib/modules/*/build)))
KVER = $(notdir $(patsubst %/build,%,$(KDIR)))

SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD ?= build
SANFLAGS :=
else
BUILD ?= build/$(SANITIZER)
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN := -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-Wformat=2 -Wpointer-arith -Wno-unused-parameter -Werror
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ltirpc -lzstd -ldevmapper -lz -lblkid)
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Iserver -Itools -Imonitor/lib $(PKG_CFLAGS)
CFLAGS ?= -O2 -g
CFLAGS += $(WARN) -pthread -MMD -MP $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS += $(PKG_LIBS)

LIB_SRCS := $(wildcard server/*/*.c)
TOOL_SRCS := $(filter-out tools/ddsnap.c,$(wildcard tools/*.c))
MON_SRCS := $(wildcard monitor/*.c)
MONLIB_SRCS := $(wildcard monitor/lib/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNITLIB_SRCS := $(wildcard tests/unit/lib/*.c)
STRESS_SRCS := $(wildcard tests/stress/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)

LIB := $(BUILD)/libddsnap.a
TOOLLIB := $(BUILD)/libddsnap-tools.a
MONLIB := $(BUILD)/libzumastor.a
DDSNAP := $(BUILD)/bin/ddsnap
MON_BINS := $(patsubst monitor/%.c,$(BUILD)/bin/%,$(MON_SRCS))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
STRESS_BINS := $(patsubst tests/stress/%.c,$(BUILD)/tests/stress_%,$(STRESS_SRCS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
KMOD := kernel/dm-ddsnap.ko
# The module's whole source: what Kbuild reads here, and what DKMS gets (install-module-source).
KMOD_SRCS := Kbuild kernel/Kbuild $(wildcard kernel/*.c kernel/*.h include/*.h)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all userspace kernel deps unit cli monitor vm-test check lint fuzz fuzz-check stress \
	stress-check bench demo fresh-test install clean format programs install-programs \
	install-module-source deb deb-check

all: userspace kernel

userspace: $(DDSNAP) $(MON_BINS) $(UNIT_BINS) $(STRESS_BINS) $(BENCH_BINS) $(BUILD)/tests/wirepeer $(BUILD)/tests/snaprace \
	$(BUILD)/bench/kwrite

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(call obj,$(LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)

$(TOOLLIB): $(call obj,$(TOOL_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)

$(MONLIB): $(call obj,$(MONLIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)

$(DDSNAP): $(call obj,tools/ddsnap.c) $(TOOLLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/monitor/%.o $(MONLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(call obj,$(UNITLIB_SRCS)) $(TOOLLIB) $(MONLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/stress_%: $(BUILD)/obj/tests/stress/%.o $(call obj,$(UNITLIB_SRCS)) $(TOOLLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka # tests/unit/lib's fixtures assert with cmocka

# The wire test peer of the kernel scenarios (tests/vm/wirepeer.sh builds it in the guest
# too); built here so it gets the same warnings as everything else.
$(BUILD)/tests/wirepeer: $(BUILD)/obj/tests/vm/wirepeer.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# server-readrace's racer: snapshot reads against first writes at depth, every byte checked.
$(BUILD)/tests/snaprace: $(BUILD)/obj/tests/vm/snaprace.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -pthread

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TOOLLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets: the library is rebuilt with clang and the fuzzer's sanitizers.
FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -D_GNU_SOURCE -DFUZZING \
	-Iinclude -Iserver -Itools $(PKG_CFLAGS) -std=gnu11 -pthread
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c -o $@ $<
# Fuzz targets exercise library decoders: they link the library as an archive, so only the
# objects they use are pulled in.
build/fuzz/libddsnap.a: $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRCS))
	rm -f $@
	ar rcs $@ $^
build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o build/fuzz/libddsnap.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -pthread -o $@ $^ $(LDLIBS)

# The kernel's own codec (kernel/ddsnap-proto.c) compiled in userspace through the shim in
# tests/unit/kshim, for test_kproto and fuzz_kproto: the very code the module runs (kernel
# style: arithmetic on void pointers).
KSHIM := -Itests/unit/kshim -Ikernel
$(BUILD)/obj/kshim/ddsnap-proto.o: kernel/ddsnap-proto.c
	@mkdir -p $(dir $@)
	$(CC) $(KSHIM) $(CPPFLAGS) $(CFLAGS) -Wno-pointer-arith -c -o $@ $<
$(BUILD)/obj/tests/unit/test_kproto.o: CPPFLAGS += $(KSHIM)
$(BUILD)/tests/test_kproto: $(BUILD)/obj/kshim/ddsnap-proto.o
build/fuzz/obj/kshim/ddsnap-proto.o: kernel/ddsnap-proto.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(KSHIM) $(FUZZ_FLAGS) -c -o $@ $<
build/fuzz/obj/tests/fuzz/fuzz_kproto.o: FUZZ_FLAGS += $(KSHIM)
build/fuzz/fuzz_kproto: build/fuzz/obj/kshim/ddsnap-proto.o
# The replay fuzzer runs a real engine on the unit tests' fixture (linked before the archive).
build/fuzz/obj/tests/fuzz/fuzz_engine_replay.o: FUZZ_FLAGS += -Itests/unit
build/fuzz/fuzz_engine_replay: build/fuzz/obj/tests/fuzz/fuzz_engine_replay.o \
		build/fuzz/obj/tests/unit/lib/enginefix.o build/fuzz/libddsnap.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -pthread -o $@ $^ $(LDLIBS)

kernel: $(KMOD)
$(KMOD): $(KMOD_SRCS)
	@test -d "$(KDIR)" || { echo "no kernel headers in KDIR='$(KDIR)'; run 'make deps'"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

-include $(shell find $(BUILD)/obj build/fuzz/obj -name '*.d' 2>/dev/null)

deps:
	@bash scripts/deps.sh

unit: $(UNIT_BINS)
	@bash tests/unit/run.sh $(UNIT_BINS)

cli: $(DDSNAP)
	@bash tests/cli/run.sh $(BUILD)

monitor: $(DDSNAP) $(MON_BINS)
	@bash tests/monitor/run.sh $(BUILD)

stress: $(STRESS_BINS)
	@bash tests/stress/run.sh $(BUILD) $(DURATION)

stress-check: $(STRESS_BINS)
	@bash tests/stress/run.sh $(BUILD) 20

fuzz: $(FUZZ_BINS)
	@bash tests/fuzz/run.sh $(or $(FUZZTIME),60) $(FUZZ_BINS)

fuzz-check: $(FUZZ_BINS)
	@bash tests/fuzz/run.sh 10 $(FUZZ_BINS)

# The packages scenario installs the .deb files: build them first when it is among those run.
vm-test: all $(if $(filter-out packages packages.sh,$(T)),,deb)
	@bash tests/vm/run-all.sh $(T)

lint:
	@bash scripts/lint.sh "$(KDIR)"

# The steps of 'make check', in order; it stops at the first that fails.  fresh-test runs the
# first ones only (CHECK_STEPS=unit).
CHECK_STEPS ?= lint unit cli monitor deb-check fuzz-check stress-check vm-test

# check, demo and bench install the packages first and only then build, in a sub-make: this
# make read PKG_CFLAGS and KDIR before 'deps' ran, so on a fresh machine they are empty here
# (no -I/usr/include/tirpc, no kernel headers) and only a make started after 'deps' sees them.
check: deps
	@rm -rf build/results
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@for step in $(CHECK_STEPS); do $(MAKE) --no-print-directory $$step || exit 1; done
	@bash scripts/summary.sh

bench: deps
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@bash bench/run.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@bash tests/vm/run-one.sh demo tests/vm/demo.sh

# The README's two commands on their first run on a fresh Debian 12 root (doc/HACKING.md).
fresh-test:
	@bash scripts/fresh-test.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

# Installing.  One list, used by make install (PREFIX=/usr/local) and by debian/rules
# (PREFIX=/usr, DESTDIR=debian/tmp; doc/packaging.md):
#   install-programs  ddsnap and zumastor in $(PREFIX)/sbin, the monitor's helper programs
#                     in $(PREFIX)/libexec/zumastor (zumastor finds them there), the man pages,
#                     every unit and cron file of monitor/systemd (scripts/install-units.sh),
#                     the config database's directory /var/lib/zumastor
#   install-module-source   the module's source for DKMS in $(DESTDIR)$(MODSRC) (Kbuild files,
#                     kernel/, the wire header): what the ddsnap-dkms package carries
#   install           install-programs with the units enabled, and the module built here for
#                     $(KVER) in /lib/modules/$(KVER)/extra (depmod when DESTDIR is empty)
SBINDIR = $(PREFIX)/sbin
HELPERDIR = $(PREFIX)/libexec/zumastor
MANDIR = $(PREFIX)/share/man
MODSRC ?= /usr/src/dm-ddsnap
UNIT_ENABLE ?=

programs: $(DDSNAP) $(MON_BINS)

install-programs: programs
	install -D -m 0755 $(DDSNAP) $(DESTDIR)$(SBINDIR)/ddsnap
	install -D -m 0755 monitor/zumastor $(DESTDIR)$(SBINDIR)/zumastor
	for b in $(MON_BINS); do install -D -m 0755 $$b $(DESTDIR)$(HELPERDIR)/$$(basename $$b) || exit 1; done
	for m in tools/man/*.8; do install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/$$(basename $$m) || exit 1; done
	bash scripts/install-units.sh $(UNIT_ENABLE) $(SBINDIR) "$(DESTDIR)"
	install -d -m 0755 $(DESTDIR)/var/lib/zumastor

install-module-source:
	for f in $(KMOD_SRCS); do install -D -m 0644 $$f $(DESTDIR)$(MODSRC)/$$f || exit 1; done

install: UNIT_ENABLE = --enable
install: install-programs kernel
	install -D -m 0644 $(KMOD) $(DESTDIR)/lib/modules/$(KVER)/extra/dm-ddsnap.ko
	test -n "$(DESTDIR)" || depmod -a $(KVER)

# Debian packages (doc/packaging.md): ddsnap, ddsnap-dkms and zumastor, built by
# dpkg-buildpackage on a copy of the tracked files under build/deb/ (it writes into the
# parent of the tree it builds); the .deb files are left in build/deb/.  deb-check runs
# lintian over them (make check runs it; an error fails).
DEB_STAMP := build/deb/stamp
deb: $(DEB_STAMP)
$(DEB_STAMP): $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null))
	@bash scripts/build-deb.sh

deb-check: deb
	@bash scripts/deb-check.sh

clean:
	rm -rf build
	test -d "$(KDIR)" && $(MAKE) -C $(KDIR) M=$(CURDIR) clean || true
