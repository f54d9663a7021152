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

ALL += $(MQC_OBJS)

$(MQC_B)/%.o: $(MQC_DIR)/%.c $(MQC_HDRS) $(MQC_DIR)/core.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -ffreestanding -fPIC -fvisibility=hidden -c $< -o $@
