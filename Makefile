# SPDX-License-Identifier: GPL-2.0 OR MIT
# Top-level build of mqttq: userspace, BPF, kernel module, tests, demo and bench.
#
# Each component keeps its rules in a fragment next to its sources (*/*.mk);
# this file holds only what they share. Conventions a fragment follows:
#   ALL          += files that plain `make` must build
#   CHECK_STAGES += NAME, with a target check-NAME that prints TAP
#                   ("ok N - name" / "not ok N - name" / "# SKIP") on stdout
#                   and exits non-zero on failure; scripts/check.sh sums them.
#   CLEAN        += extra paths for `make clean`

# The kernel build system includes this file when Kbuild is missing; it is not.
ifneq ($(KERNELRELEASE),)
include $(src)/Kbuild
else

SHELL := /bin/bash
.DEFAULT_GOAL := all
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

# SAN=1 builds userspace and its tests with ASan+UBSan into a separate tree.
SAN ?= 0
ifeq ($(SAN),1)
B ?= $(TOP)/build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B ?= $(TOP)/build
SANFLAGS :=
endif

CC ?= cc
CLANG ?= clang
AR ?= ar
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE
LDFLAGS += $(SANFLAGS)

ALL :=
CHECK_STAGES :=
CLEAN :=

# Library fragments first: rule prerequisites expand at parse time, so the
# variables they export ($(LIBMQTTQ_A), $(MQC_OBJS), $(MQF_OBJS)) must exist
# before the fragments that link against them are read.
FRAGS_FIRST := $(sort $(wildcard $(TOP)/libmqttq/core/*.mk $(TOP)/libmqttq/bpf/*.mk)) \
	$(sort $(wildcard $(TOP)/libmqttq/*.mk))
FRAGS := $(FRAGS_FIRST) \
	$(filter-out $(FRAGS_FIRST),$(sort $(wildcard $(TOP)/*/*.mk $(TOP)/*/*/*.mk $(TOP)/tests/*/*/*.mk)))
include $(FRAGS)

.PHONY: all deps check demo bench install clean san check-stages
all: $(ALL)

deps:
	@bash $(TOP)/scripts/deps.sh

# make check: set-up, build, then every stage; the last line is the summary.
check: deps
	@bash $(TOP)/scripts/check.sh $(CHECK_STAGES)

check-stages:
	@echo $(CHECK_STAGES)

demo: deps
	@bash $(TOP)/scripts/demo.sh

san:
	$(MAKE) SAN=1 all

clean:
	rm -rf $(TOP)/build $(TOP)/build-san $(CLEAN)

endif
