# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "tools": options, exit codes and mosquitto round trips of mqttq-pub/sub/bench/stat.

CHECK_STAGES += tools

.PHONY: check-tools
check-tools: $(TOOLS_BINS)
	@bash $(TOP)/tests/tools/run.sh $(B)
