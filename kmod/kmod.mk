# SPDX-License-Identifier: GPL-2.0
# Builds mqttq.ko once per installed Debian kernel (build/kmod/<rel>/), installs it, runs checkpatch.
#
#   make                      every kernel with headers in /lib/modules/*/build
#                             (only the running one if its headers exist)
#   make KDIR=/lib/modules/REL/build   just that kernel
#   make install-kmod [DESTDIR=...]    into /lib/modules/<rel>/updates + depmod (with DESTDIR
#                             only if it holds that kernel's modules: a partial index would
#                             shadow the target's own)
#   make checkpatch           scripts/checkpatch.pl from linux-source-6.1 on kmod/
#
# The module tree is build/kmod even under SAN=1: the sanitizers are userspace only.

KMOD_B := $(TOP)/build/kmod
LINUX_SRC_TAR ?= /usr/src/linux-source-6.1.tar.xz
LINUX_X := $(TOP)/build/linux-src

# utsrelease.h, not include/config/kernel.release: Debian's 6.1 headers put the upstream
# version (6.1.192) in the latter.
KMOD_UTS := include/generated/utsrelease.h
kmod_rel_of = $(strip $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' $(1)/$(KMOD_UTS) 2>/dev/null))
ifneq ($(KDIR),)
KMOD_RELS := $(call kmod_rel_of,$(KDIR))
else
KMOD_RELS := $(if $(wildcard /lib/modules/$(shell uname -r)/build/$(KMOD_UTS)),\
	$(shell uname -r),\
	$(patsubst /lib/modules/%/build/$(KMOD_UTS),%,$(wildcard /lib/modules/*/build/$(KMOD_UTS))))
endif
kmod_kdir = $(if $(KDIR),$(KDIR),/lib/modules/$(1)/build)

KMOD_SRCS = $(wildcard $(TOP)/kmod/*.c $(TOP)/libmqttq/core/*.c)
KMOD_HDRS = $(wildcard $(TOP)/kmod/*.h $(TOP)/libmqttq/core/*.h $(TOP)/libmqttq/include/*.h)
KMOD_KOS := $(foreach r,$(KMOD_RELS),$(KMOD_B)/$(r)/mqttq.ko)
# A removed source changes no prerequisite's mtime; this list, rewritten only when the set
# of sources changes, makes the module relink without it.
KMOD_LIST := $(KMOD_B)/sources.list
kmod_list_now := $(sort $(patsubst $(TOP)/%,%,$(KMOD_SRCS)))
ifneq ($(KMOD_RELS),)
$(shell mkdir -p $(KMOD_B) && { [ "$$(cat $(KMOD_LIST) 2>/dev/null)" = "$(kmod_list_now)" ] || \
	echo "$(kmod_list_now)" >$(KMOD_LIST); })
endif

ALL += $(KMOD_KOS)
CLEAN += $(KMOD_B) $(LINUX_X) $(TOP)/build/dkms

# Each release gets a mirror of symlinks to the sources (objects land next to them, in
# build/), rebuilt every time so added or removed files are seen. W=1 warnings, and
# modpost's, fail the build: -Werror covers the compiler, the log grep the rest.
# The stem is the kernel release.
$(KMOD_B)/%/mqttq.ko: $(KMOD_SRCS) $(KMOD_HDRS) $(KMOD_LIST) $(TOP)/Kbuild $(TOP)/kmod/kmod.mk
	@set -e -o pipefail; d=$(KMOD_B)/$*; mkdir -p $$d; \
	find $$d -type l -delete; \
	ln -s $(TOP)/Kbuild $$d/Kbuild; \
	for f in $(patsubst $(TOP)/%,%,$(KMOD_SRCS)); do \
		mkdir -p $$d/$$(dirname $$f); ln -s $(TOP)/$$f $$d/$$f; \
	done; \
	echo "  KMOD    $* -> $(patsubst $(TOP)/%,%,$@)"; \
	$(MAKE) --no-print-directory -C $(call kmod_kdir,$*) M=$$d MQTTQ_TOP=$(TOP) W=1 \
		KCFLAGS=-Werror modules >$$d/build.log 2>&1 || { cat $$d/build.log; exit 1; }; \
	if grep -Ei '(warning|error):' $$d/build.log; then \
		echo "kmod: $* built with warnings (see $$d/build.log)" >&2; rm -f $@; exit 1; fi; \
	test -f $@ && touch $@

.PHONY: kmod install install-kmod checkpatch
kmod: $(KMOD_KOS)

install: install-kmod
install-kmod: $(KMOD_KOS)
	@set -e; for r in $(KMOD_RELS); do \
		install -D -m 0644 $(KMOD_B)/$$r/mqttq.ko $(DESTDIR)/lib/modules/$$r/updates/mqttq.ko; \
		echo "  INSTALL $(DESTDIR)/lib/modules/$$r/updates/mqttq.ko"; \
		if [ -z "$(DESTDIR)" ]; then depmod -a $$r; \
		elif [ -f "$(DESTDIR)/lib/modules/$$r/modules.order" ]; then depmod -b "$(DESTDIR)" -a $$r; \
		else echo "  (DESTDIR has no modules of $$r: run 'depmod -a $$r' on the target)"; fi; \
	done

# Kernel files the build borrows, taken from the Debian source tarball at build time.
LINUX_X_FILES := scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch \
	tools/testing/selftests/kselftest_harness.h tools/testing/selftests/kselftest.h
$(LINUX_X)/.stamp: $(wildcard $(LINUX_SRC_TAR))
	@test -r $(LINUX_SRC_TAR) || { echo "kmod: $(LINUX_SRC_TAR) missing (run make deps)" >&2; exit 1; }
	@echo "  UNTAR   $(notdir $(LINUX_SRC_TAR)): $(notdir $(LINUX_X_FILES))"
	@rm -rf $(LINUX_X) && mkdir -p $(LINUX_X)
	@tar -xJf $(LINUX_SRC_TAR) -C $(LINUX_X) --strip-components=1 \
		$(addprefix linux-source-6.1/,$(LINUX_X_FILES))
	@touch $@

# LINUX_VERSION_CODE is ignored: an out-of-tree module for two kernels needs it.
checkpatch: $(LINUX_X)/.stamp
	@perl $(LINUX_X)/scripts/checkpatch.pl --no-tree --terse --show-types --ignore LINUX_VERSION_CODE \
		-f $(wildcard $(TOP)/kmod/*.c $(TOP)/kmod/*.h)

# A DKMS source tree: dkms.conf must sit at its top.
DKMS_VER := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' $(TOP)/kmod/dkms.conf)
.PHONY: dkms-tree
dkms-tree:
	@d=$(TOP)/build/dkms/mqttq-$(DKMS_VER); rm -rf $$d && mkdir -p $$d/libmqttq && \
	cp $(TOP)/kmod/dkms.conf $(TOP)/Kbuild $$d/ && cp -r $(TOP)/kmod $$d/ && \
	rm -rf $$d/kmod/examples $$d/kmod/kmod.mk && \
	cp -r $(TOP)/libmqttq/core $(TOP)/libmqttq/include $$d/libmqttq/ && \
	echo "  DKMS    $$d"
