# SPDX-License-Identifier: GPL-2.0
# bench-filter-kmod: unwanted QoS 0 messages dropped by the module's eBPF topic filter vs. matched in userspace, in the VM.

BFK := $(B)/bench/bench_filter_kmod
# First kernel with a module build and an image; BFK_RELS="..." picks others.
BFK_RELS ?= $(firstword $(foreach r,$(KMOD_RELS),$(if $(wildcard /boot/vmlinuz-$(r)),$(r))))
BFK_N ?= 100000
ALL += $(BFK)

$(BFK): $(TOP)/bench/filter/bench_filter_kmod.c $(TOP)/tests/kselftest/ulp_util.h \
		$(TOP)/libmqttq/include/mqttq_uapi.h $(MQF_OBJS) $(MQF_MATCH_O)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(TOP)/libmqttq/include -I$(TOP)/tests/kselftest $(MQF_CFLAGS) $< \
		$(MQF_OBJS) $(MQF_MATCH_O) -o $@ $(LDFLAGS) $(MQF_LIBS)

.PHONY: bench-filter-kmod
# Numbers, not a test: boots each kernel, loads the fresh mqttq.ko, runs the bench.
bench-filter-kmod: $(BFK) $(KMOD_KOS)
	@for r in $(BFK_RELS); do \
		$(TOP)/tests/vm/run $$r --timeout 600 -- bash -c \
			'insmod $(B)/kmod/'"$$r"'/mqttq.ko && $(BFK) $(BFK_N)' || exit 1; \
	done
