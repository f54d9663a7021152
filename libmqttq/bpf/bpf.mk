# SPDX-License-Identifier: GPL-2.0 OR MIT
# Build of the eBPF topic filter: BPF object, its skeleton, and the loader objects libmqttq links.
#
# For the library: link $(MQF_OBJS) (the loader, position-independent) and
# add $(MQF_LIBS) to the link line; compile against "mqf.h" with $(MQF_CFLAGS).
# The reference matcher libmqttq/src/match.c is not in MQF_OBJS: the library
# compiles it itself; $(MQF_MATCH_O) is a copy for the tests and the bench.

MQF_DIR := $(TOP)/libmqttq/bpf
MQF_B := $(B)/libmqttq/bpf
# Debian keeps bpftool in /usr/sbin, which a user's PATH may lack.
BPFTOOL ?= $(firstword $(wildcard /usr/sbin/bpftool /usr/bin/bpftool) bpftool)
MQF_BPF_CFLAGS = -target bpf -O2 -g -mcpu=v3 -Wall -Wextra -Wno-unused-parameter -Werror -I$(MQF_DIR) \
	-I/usr/include/$(shell $(CC) -dumpmachine)
MQF_CFLAGS = -I$(MQF_DIR) -I$(MQF_B) -I$(TOP)/libmqttq/src $(shell $(PKG_CONFIG) --cflags libbpf)
MQF_LIBS = $(shell $(PKG_CONFIG) --libs libbpf) -lpthread
MQF_OBJS := $(MQF_B)/mqf.o
MQF_MATCH_O := $(MQF_B)/match.o
MQF_SKEL := $(MQF_B)/topic_filter.skel.h

ALL += $(MQF_B)/topic_filter.bpf.o $(MQF_SKEL) $(MQF_OBJS) $(MQF_MATCH_O) $(MQF_B)/bench_filter

$(MQF_B)/topic_filter.bpf.o: $(MQF_DIR)/topic_filter.bpf.c $(MQF_DIR)/mqf_abi.h
	@mkdir -p $(@D)
	$(CLANG) $(MQF_BPF_CFLAGS) -c $< -o $@

$(MQF_SKEL): $(MQF_B)/topic_filter.bpf.o
	$(BPFTOOL) gen skeleton $< name topic_filter_bpf >$@.tmp
	mv $@.tmp $@

$(MQF_B)/mqf.o: $(MQF_DIR)/mqf.c $(MQF_DIR)/mqf.h $(MQF_DIR)/mqf_abi.h $(TOP)/libmqttq/src/match.h \
		$(MQF_SKEL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC $(MQF_CFLAGS) -c $< -o $@

$(MQF_B)/match.o: $(TOP)/libmqttq/src/match.c $(TOP)/libmqttq/src/match.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(MQF_B)/bench_filter: $(MQF_DIR)/bench_filter.c $(MQF_OBJS) $(MQF_MATCH_O)
	$(CC) $(CFLAGS) $(MQF_CFLAGS) $< $(MQF_OBJS) $(MQF_MATCH_O) -o $@ $(LDFLAGS) $(MQF_LIBS)

.PHONY: bench-filter
# Prints the kernel's ns per filtered message; a measurement, not a test.
bench-filter: $(MQF_B)/bench_filter
	$(MQF_B)/bench_filter
