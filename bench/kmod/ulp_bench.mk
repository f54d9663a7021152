# SPDX-License-Identifier: GPL-2.0 OR MIT
# Builds the mqttq ULP benchmark (run it in the VM: see docs/kmod.md, "Performance").

ULP_BENCH := $(B)/bench/ulp_bench
ALL += $(ULP_BENCH)

$(ULP_BENCH): $(TOP)/bench/kmod/ulp_bench.c $(TOP)/libmqttq/include/mqttq_uapi.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(TOP)/libmqttq/include $< -o $@ $(LDFLAGS) -lpthread
