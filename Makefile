# SPDX-License-Identifier: MIT
# Build, run and test the groups service.  See README.md; `make help` lists
# the targets.

VERSION	:= 0.1.0
PREFIX	?= /usr
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
DESTDIR	?=

CC	?= gcc
Q	?= @
BUILD	?= build
PYTHON	?= /usr/bin/python3

WARN	:= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wcast-qual -Wformat=2 -Wno-format-nonliteral \
	   -Werror=implicit-function-declaration -Werror
OPT	?= -O2 -g
SAN_FLAGS ?=
CFLAGS	+= -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN_FLAGS) -Iinclude \
	   -DGROUPS_VERSION='"$(VERSION)"' -fno-omit-frame-pointer \
	   -fstack-protector-strong -MMD -MP
LDFLAGS	+= -rdynamic $(SAN_FLAGS)

pc	= $(shell pkg-config --cflags $(1))
pl	= $(shell pkg-config --libs $(1))

COMMON_PKGS := libmicrohttpd jansson libpq libcurl openssl libsodium
CFLAGS	+= $(call pc,$(COMMON_PKGS))
COMMON_LIBS := $(call pl,$(COMMON_PKGS)) -lresolv -lpthread

# Per-program extra dependencies.
LIBS_smtpd	 := $(call pl,libevent libevent_pthreads libevent_openssl)
CFLAGS_smtpd	 := $(call pc,libevent)
# karl signs with OpenSSL (src/common/dkim.c), not libopendkim, whose
# dkim_sign would clash with ours; only test_dkim links it, to verify.
LIBS_karl	 := -lleveldb $(call pl,gmime-3.0)
CFLAGS_karl	 := $(call pc,gmime-3.0)
LIBS_messageserver := $(call pl,gmime-3.0)
CFLAGS_messageserver := $(call pc,gmime-3.0)
LIBS_rsscrawler	 := $(call pl,libxml-2.0)
CFLAGS_rsscrawler := $(call pc,libxml-2.0)

DAEMONS	:= errord web smtpd messageserver karl
CRON	:= rsscrawler instagramcrawler bouncer expirethreads senddigests
TOOLS	:= errtail groupsadmin groups-supervise
PROGS	:= $(DAEMONS) $(CRON) $(TOOLS)
BINS	:= $(addprefix $(BUILD)/bin/,$(PROGS))

COMMON_SRC := $(wildcard src/common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
LIBCOMMON  := $(BUILD)/libcommon.a

# Sources of each program.
SRC_errord	 := $(filter-out src/errord/errtail.c,$(wildcard src/errord/*.c))
SRC_errtail	 := src/errord/errtail.c
SRC_web		 := $(wildcard src/web/*.c)
SRC_smtpd	 := $(wildcard src/smtpd/*.c)
SRC_messageserver := $(wildcard src/messageserver/*.c)
SRC_karl	 := $(wildcard src/karl/*.c)
SRC_groupsadmin	 := $(wildcard src/tools/groupsadmin*.c)
SRC_groups-supervise := src/tools/supervise.c
$(foreach c,$(CRON),$(eval SRC_$(c) := $(wildcard src/cron/$(c).c src/cron/$(c)_*.c)))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run stop test unit e2e asan fuzz fuzz-brief bench lint \
	format install clean help
all: $(BINS)

help:
	@echo "make run      install deps, build, start the local stack"
	@echo "make stop     stop what make run started (data stays in var/)"
	@echo "make test     install deps, build, run every test"
	@echo "make asan     build with ASan+UBSan and run the tests"
	@echo "make fuzz     run each libFuzzer target for FUZZ_SECONDS (60)"
	@echo "make bench    run every benchmark under bench/"
	@echo "make install  DESTDIR=... PREFIX=/usr, FHS layout"
	@echo "make lint     banned functions; make format: clang-format"

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(CFLAGS_$(notdir $(patsubst %/,%,$(dir $<)))) -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

define PROG_template
$(BUILD)/bin/$(1): $$(SRC_$(1):%.c=$(BUILD)/obj/%.o) $(LIBCOMMON)
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBCOMMON) $$(LIBS_$(1)) $(COMMON_LIBS)
endef
$(foreach p,$(PROGS),$(eval $(call PROG_template,$(p))))

# common modules built on GMime (MIME helpers shared by daemons)
GMIME_COMMON := mime_footer dsn
$(foreach m,$(GMIME_COMMON),$(eval $(BUILD)/obj/src/common/$(m).o: CFLAGS += $(call pc,gmime-3.0)))

# cron sources take the per-program flags by file name
$(foreach c,$(CRON),$(eval $(BUILD)/obj/src/cron/$(c).o: CFLAGS += $(CFLAGS_$(c))))

# A unit test of a module that needs more than the common libraries names
# its flags and libraries here.
TEST_FLAGS_mime_footer := $(call pc,gmime-3.0)
TEST_LIBS_mime_footer  := $(call pl,gmime-3.0)
TEST_FLAGS_mime_footer_mend := $(TEST_FLAGS_mime_footer)
TEST_LIBS_mime_footer_mend  := $(TEST_LIBS_mime_footer)
TEST_FLAGS_dsn	       := $(call pc,gmime-3.0)
TEST_LIBS_dsn	       := $(call pl,gmime-3.0)
TEST_FLAGS_dkim	       := $(call pc,opendkim)
TEST_LIBS_dkim	       := $(call pl,opendkim)
$(BUILD)/tests/test_messageserver_bouncestate: src/messageserver/messageserver_bouncestate.c

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  TEST-CC $<"
	$(Q)$(CC) $(CFLAGS) $(TEST_FLAGS_$*) $(call pc,cmocka) $(LDFLAGS) -o $@ \
	    $< $(LIBCOMMON) $(TEST_LIBS_$*) $(call pl,cmocka) $(COMMON_LIBS)

deps:
	@./deploy/install-deps.sh

run: deps all
	@./deploy/stack start

stop:
	@./deploy/stack stop

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: all $(UNIT_BIN)
	GROUPS_BIN=$(CURDIR)/$(BUILD)/bin $(PYTHON) -m pytest -q --durations=15 tests/e2e $(PYTEST_ARGS)

test: deps
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) fuzz-brief
	$(MAKE) e2e

asan: deps
	$(MAKE) BUILD=build-asan OPT="-O1 -g" \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	    all unit e2e \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# libFuzzer targets: tests/fuzz/fuzz_<parser>.c, seeds in tests/fuzz/<parser>/
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-DFUZZING \
	$(call pc,$(COMMON_PKGS) gmime-3.0)
# a target that fuzzes a program's own module names it here
FUZZ_EXTRA_mime := src/messageserver/messageserver_mime.c
FUZZ_FLAGS_mime := $(call pc,gmime-3.0) -Isrc/messageserver
FUZZ_LIBS_mime	:= $(call pl,gmime-3.0)
FUZZ_EXTRA_outgoing := src/messageserver/messageserver_outgoing.c \
	src/messageserver/messageserver_mime.c
FUZZ_FLAGS_outgoing := $(FUZZ_FLAGS_mime)
FUZZ_LIBS_outgoing := $(FUZZ_LIBS_mime)
FUZZ_EXTRA_karlsmtp := src/karl/karl_smtp.c
FUZZ_FLAGS_karlsmtp := -Isrc/karl
FUZZ_EXTRA_smtp_session := src/smtpd/smtpd_session.c src/smtpd/smtpd_routes.c
FUZZ_FLAGS_smtp_session := -Isrc/smtpd $(call pc,libevent)
FUZZ_LIBS_smtp_session := $(call pl,libevent libevent_openssl) \
	-Wl,--wrap=messageserver_clnt_rcpt -Wl,--wrap=messageserver_clnt_inbound
# the common library is compiled once for every target, not once per target
FUZZ_COMMON_OBJ := $(COMMON_SRC:src/common/%.c=build-fuzz/obj/%.o)
FUZZ_LIBCOMMON	:= build-fuzz/libcommon.a
build-fuzz/obj/%.o: src/common/%.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	@echo "  FUZZ-CC $<"
	$(Q)clang $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_LIBCOMMON): $(FUZZ_COMMON_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
.SECONDEXPANSION:
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBCOMMON) $$(FUZZ_EXTRA_$$*)
	@mkdir -p build-fuzz
	@echo "  FUZZ-LD $@"
	$(Q)clang $(FUZZ_CFLAGS) $(FUZZ_FLAGS_$*) -o $@ $< $(FUZZ_EXTRA_$*) \
	    $(FUZZ_LIBCOMMON) $(FUZZ_LIBS_$*) $(call pl,gmime-3.0) $(COMMON_LIBS)
FUZZ_JOBS ?= 2
fuzz: $(FUZZ_BIN)
	@tests/fuzz/run-all $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_BIN)
fuzz-brief:
	$(MAKE) fuzz FUZZ_SECONDS=10

bench: all
	@set -e; for b in bench/*; do [ -x "$$b" ] || continue; \
	    echo "== $$b"; GROUPS_BIN=$(CURDIR)/$(BUILD)/bin $$b; done

# Banned: unbounded string functions.
lint:
	@if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok)\s*\(' \
	    $$(find src include tests/unit -name '*.[ch]'); then \
	    echo "lint: banned function used"; exit 1; fi; echo "lint: ok"

format:
	clang-format -i $$(find src include tests -name '*.[ch]')

LIBEXECDIR := $(PREFIX)/lib/groups
DATADIR	   := $(PREFIX)/share/groups
install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(DATADIR)/sql \
	    $(DESTDIR)$(DATADIR)/templates $(DESTDIR)$(SYSCONFDIR)/groups \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system \
	    $(DESTDIR)$(SYSCONFDIR)/cron.d $(DESTDIR)$(DATADIR)/nginx \
	    $(DESTDIR)$(PREFIX)/share/doc/groups
	install -m 755 $(addprefix $(BUILD)/bin/,$(DAEMONS) $(CRON)) \
	    $(DESTDIR)$(LIBEXECDIR)/
	install -m 755 $(BUILD)/bin/errtail $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BUILD)/bin/groupsadmin $(BUILD)/bin/groups-supervise \
	    $(DESTDIR)$(PREFIX)/sbin/
	install -m 644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	cp -R templates/. $(DESTDIR)$(DATADIR)/templates/
	install -m 644 deploy/systemd/* $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -m 644 deploy/crontab $(DESTDIR)$(SYSCONFDIR)/cron.d/groups
	install -m 644 deploy/nginx/groups.conf deploy/nginx/groups-mail.conf \
	    $(DESTDIR)$(DATADIR)/nginx/
	install -m 640 deploy/groups.conf $(DESTDIR)$(SYSCONFDIR)/groups/groups.conf
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/groups/

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
