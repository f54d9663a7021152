# SPDX-License-Identifier: GPL-2.0 OR MIT
# Build rules of the libmosquitto and paho.mqtt.c driver programs used by the fault tests and benchmarks.

PEER_B := $(B)/tests/peers
PEER_BINS := $(PEER_B)/peer-mosq-pub $(PEER_B)/peer-mosq-sub $(PEER_B)/peer-paho-pub \
	$(PEER_B)/peer-paho-sub
ALL += $(PEER_BINS)

$(PEER_B)/%.o: $(TOP)/tests/peers/%.c $(TOP)/tests/peers/peer_common.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(PEER_B)/peer-mosq-%: $(PEER_B)/mosq_%.o $(PEER_B)/peer_common.o
	$(CC) $(LDFLAGS) -o $@ $^ -lmosquitto

$(PEER_B)/peer-paho-%: $(PEER_B)/paho_%.o $(PEER_B)/peer_common.o
	$(CC) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3a -lpthread

.PHONY: peer-bins
peer-bins: $(PEER_BINS)
.PRECIOUS: $(PEER_B)/%.o
