# SPDX-License-Identifier: GPL-2.0 OR MIT
# Build of libmqttq: shared library with SONAME libmqttq.so.0, static library, pkg-config file, man pages.
#
# Other fragments link the library with $(LIBMQTTQ_A) (static, plus
# $(LIBMQTTQ_LIBS)) or $(LIBMQTTQ_SO), and compile with $(LIBMQTTQ_CFLAGS).

LIBMQTTQ_DIR := $(TOP)/libmqttq
LIBMQTTQ_B := $(B)/libmqttq
LIBMQTTQ_VER := 0.1.0
# match.c is the BPF engineer's reference matcher; the library compiles it (see bpf.mk)
LIBMQTTQ_SRCS := $(addprefix $(LIBMQTTQ_DIR)/src/,client.c offload.c outbox.c pool.c url.c match.c)
# The core is compiled here again, position-independent and hidden, so the
# shared object does not depend on how the core's own fragment builds it.
LIBMQTTQ_CORE_SRCS = $(wildcard $(LIBMQTTQ_DIR)/core/*.c)
LIBMQTTQ_OBJS = $(patsubst $(LIBMQTTQ_DIR)/src/%.c,$(LIBMQTTQ_B)/pic/%.o,$(LIBMQTTQ_SRCS)) \
	$(patsubst $(LIBMQTTQ_DIR)/core/%.c,$(LIBMQTTQ_B)/pic/core_%.o,$(LIBMQTTQ_CORE_SRCS))
LIBMQTTQ_HDRS := $(wildcard $(LIBMQTTQ_DIR)/src/*.h $(LIBMQTTQ_DIR)/core/*.h) \
	$(LIBMQTTQ_DIR)/include/mqttq.h
LIBMQTTQ_SO := $(LIBMQTTQ_B)/libmqttq.so
LIBMQTTQ_A := $(LIBMQTTQ_B)/libmqttq.a
LIBMQTTQ_PC := $(LIBMQTTQ_B)/libmqttq.pc
LIBMQTTQ_CFLAGS := -I$(LIBMQTTQ_DIR)/include
# libbpf for the eBPF topic filter manager ($(MQF_OBJS), libmqttq/bpf/bpf.mk)
LIBMQTTQ_LIBS = -luring $(MQF_LIBS)
LIBMQTTQ_MAN := $(wildcard $(LIBMQTTQ_DIR)/man/*.3)

ALL += $(LIBMQTTQ_SO) $(LIBMQTTQ_A) $(LIBMQTTQ_PC)

LIBMQTTQ_CC = $(CC) $(CFLAGS) -fPIC -fvisibility=hidden -I$(LIBMQTTQ_DIR)/include \
	-I$(LIBMQTTQ_DIR)/src -I$(LIBMQTTQ_DIR)/bpf

$(LIBMQTTQ_B)/pic/%.o: $(LIBMQTTQ_DIR)/src/%.c $(LIBMQTTQ_HDRS) $(MQF_SKEL)
	@mkdir -p $(@D)
	$(LIBMQTTQ_CC) -c $< -o $@

$(LIBMQTTQ_B)/pic/core_%.o: $(LIBMQTTQ_DIR)/core/%.c $(LIBMQTTQ_HDRS)
	@mkdir -p $(@D)
	$(LIBMQTTQ_CC) -c $< -o $@

$(LIBMQTTQ_B)/libmqttq.so.$(LIBMQTTQ_VER): $(LIBMQTTQ_OBJS) $(MQF_OBJS) $(LIBMQTTQ_DIR)/libmqttq.map
	$(CC) -shared -Wl,-soname,libmqttq.so.0 -Wl,--version-script=$(LIBMQTTQ_DIR)/libmqttq.map \
		-Wl,--no-undefined $(LDFLAGS) -o $@ $(LIBMQTTQ_OBJS) $(MQF_OBJS) $(LIBMQTTQ_LIBS)

$(LIBMQTTQ_SO): $(LIBMQTTQ_B)/libmqttq.so.$(LIBMQTTQ_VER)
	ln -sf libmqttq.so.$(LIBMQTTQ_VER) $(LIBMQTTQ_B)/libmqttq.so.0
	ln -sf libmqttq.so.$(LIBMQTTQ_VER) $@

$(LIBMQTTQ_A): $(LIBMQTTQ_OBJS) $(MQF_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(LIBMQTTQ_PC): $(LIBMQTTQ_DIR)/libmqttq.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(LIBMQTTQ_VER)|' $< >$@

.PHONY: install-libmqttq
install: install-libmqttq
install-libmqttq: $(LIBMQTTQ_SO) $(LIBMQTTQ_A) $(LIBMQTTQ_PC)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man3
	install -m 0755 $(LIBMQTTQ_B)/libmqttq.so.$(LIBMQTTQ_VER) $(DESTDIR)$(LIBDIR)/
	ln -sf libmqttq.so.$(LIBMQTTQ_VER) $(DESTDIR)$(LIBDIR)/libmqttq.so.0
	ln -sf libmqttq.so.0 $(DESTDIR)$(LIBDIR)/libmqttq.so
	install -m 0644 $(LIBMQTTQ_A) $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(LIBMQTTQ_PC) $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 $(LIBMQTTQ_DIR)/include/mqttq.h $(LIBMQTTQ_DIR)/include/mqttq_uapi.h \
		$(DESTDIR)$(INCLUDEDIR)/
	$(if $(LIBMQTTQ_MAN),install -m 0644 $(LIBMQTTQ_MAN) $(DESTDIR)$(MANDIR)/man3/)
