# SPDX-License-Identifier: GPL-2.0 OR MIT
# Userspace build of the freestanding protocol core (codec + QoS engine) into $(B)/libmqttq/core/.
#
# Other fragments link $(MQC_OBJS) (position-independent, hidden visibility,
# -ffreestanding) and compile against it with $(MQC_CFLAGS). The kernel build
# (Kbuild) compiles the same sources itself.

MQC_DIR := $(TOP)/libmqttq/core
MQC_B := $(B)/libmqttq/core
MQC_SRCS = $(wildcard $(MQC_DIR)/*.c)
MQC_HDRS = $(wildcard $(MQC_DIR)/*.h)
MQC_OBJS = $(patsubst $(MQC_DIR)/%.c,$(MQC_B)/%.o,$(MQC_SRCS))
MQC_CFLAGS := -I$(MQC_DIR)
# The core runs in softirq context in the module: keep every frame small
# (the deepest call chain of mqc_input stays far below 512 bytes). The
# sanitizers inflate frames, so the limit applies to normal builds only.
MQC_FRAME_LIMIT := $(if $(filter 1,$(SAN)),,-Wframe-larger-than=400)

ALL += $(MQC_OBJS)

$(MQC_B)/%.o: $(MQC_DIR)/%.c $(MQC_HDRS) $(MQC_DIR)/core.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MQC_FRAME_LIMIT) -ffreestanding -fPIC -fvisibility=hidden -c $< -o $@
