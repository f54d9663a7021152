# SPDX-License-Identifier: GPL-2.0
# Builds the kselftest-harness tests of mqttq.ko and runs them (stage "kmod") inside qemu on each Debian kernel.
#
# Every tests/kselftest/*.c becomes build/kselftest/<name>, linked with -luring -lpthread;
# the harness headers come from linux-source-6.1 (build/linux-src, see kmod/kmod.mk).
# check-kmod boots each kernel in KMOD_VM_RELS once (tests/vm/run) and runs
# tests/kselftest/vm-check.sh there: install + modprobe, every binary, rmmod, dmesg scan.

KSFT_B := $(B)/kselftest
KSFT_INC := $(KSFT_B)/include
KSFT_SRCS = $(wildcard $(TOP)/tests/kselftest/*.c)
KSFT_BINS = $(patsubst $(TOP)/tests/kselftest/%.c,$(KSFT_B)/%,$(KSFT_SRCS))
KSFT_HDRS := $(KSFT_INC)/kselftest_harness.h $(KSFT_INC)/kselftest.h
# The harness is not -Wextra clean; only its own quirks are waived.
KSFT_CFLAGS = $(CFLAGS) -Wno-sign-compare -Wno-missing-field-initializers \
	-Wno-missing-prototypes -I$(KSFT_INC) -I$(TOP)/libmqttq/include -I$(TOP)/tests/kselftest

# Kernels to test: those with headers (a module was built) and an image to boot.
KMOD_VM_RELS = $(foreach r,$(KMOD_RELS),$(if $(wildcard /boot/vmlinuz-$(r)),$(r)))

ALL += $(KSFT_BINS)
CHECK_STAGES += kmod

# A static pattern, so make never deletes them as intermediates.
$(KSFT_HDRS): $(KSFT_INC)/%.h: $(LINUX_X)/.stamp
	@mkdir -p $(@D)
	@cp $(LINUX_X)/tools/testing/selftests/$*.h $@

$(KSFT_B)/%: $(TOP)/tests/kselftest/%.c $(KSFT_HDRS) $(wildcard $(TOP)/tests/kselftest/*.h) \
		$(wildcard $(TOP)/libmqttq/include/*.h)
	@mkdir -p $(@D)
	$(CC) $(KSFT_CFLAGS) $< -o $@ $(LDFLAGS) -luring -lpthread

.PHONY: check-kmod
check-kmod: $(KMOD_KOS) $(KSFT_BINS)
	@KSFT_NAMES="$(notdir $(KSFT_BINS))" bash $(TOP)/tests/kselftest/check-kmod.sh $(KSFT_B) \
		$(KMOD_VM_RELS)
