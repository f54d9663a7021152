# SPDX-License-Identifier: MIT
# Build and install rules of the command-line tools mqttq-pub, mqttq-sub, mqttq-bench and mqttq-stat.
#
# The tools link libmqttq statically so they run from build/ without LD_LIBRARY_PATH,
# inside the VM too.

TOOLS_DIR := $(TOP)/tools
TOOLS_B := $(B)/tools
TOOLS_NAMES := $(patsubst $(TOOLS_DIR)/%.c,%,$(wildcard $(TOOLS_DIR)/mqttq-*.c))
TOOLS_BINS := $(addprefix $(TOOLS_B)/,$(TOOLS_NAMES))
TOOLS_MAN := $(wildcard $(TOOLS_DIR)/man/*.1)
TOOLS_CC = $(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) -I$(TOOLS_DIR)

ALL += $(TOOLS_BINS)
.PRECIOUS: $(TOOLS_B)/%.o

$(TOOLS_B)/%.o: $(TOOLS_DIR)/%.c $(TOOLS_DIR)/common.h $(LIBMQTTQ_DIR)/include/mqttq.h
	@mkdir -p $(@D)
	$(TOOLS_CC) -c $< -o $@

# mqttq-stat reads sysfs only and needs no library.
$(TOOLS_B)/mqttq-stat: $(TOOLS_B)/mqttq-stat.o
	$(CC) $(LDFLAGS) -o $@ $^

$(TOOLS_B)/mqttq-%: $(TOOLS_B)/mqttq-%.o $(TOOLS_B)/common.o $(LIBMQTTQ_A)
	$(CC) $(LDFLAGS) -o $@ $(TOOLS_B)/mqttq-$*.o $(TOOLS_B)/common.o $(LIBMQTTQ_A) \
		$(LIBMQTTQ_LIBS) -lm

.PHONY: tools install-tools
tools: $(TOOLS_BINS)
install: install-tools
install-tools: $(TOOLS_BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(TOOLS_BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(TOOLS_MAN) $(DESTDIR)$(MANDIR)/man1/
