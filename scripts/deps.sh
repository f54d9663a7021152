#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Installs every build and test dependency of mqttq from Debian's packages, idempotently.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "deps: run as root (apt-get needs it)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

PKGS=(
	build-essential make pkg-config git gcc clang llvm lld
	liburing-dev libbpf-dev bpftool libelf-dev zlib1g-dev
	libcmocka-dev
	mosquitto mosquitto-clients libmosquitto-dev libpaho-mqtt-dev
	qemu-system-x86 busybox-static cpio kmod
	linux-image-amd64 linux-headers-amd64 linux-source-6.1
	iproute2 gnuplot-nox xz-utils zstd dkms
)
BPO_PKGS=(linux-image-6.12-amd64 linux-headers-6.12-amd64)

BPO=/etc/apt/sources.list.d/mqttq-backports.sources
bpo_want='Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
updated=0
if [ ! -f "$BPO" ] || [ "$(cat "$BPO")" != "$bpo_want" ]; then
	printf '%s\n' "$bpo_want" >"$BPO"
	apt-get update -qq
	updated=1
fi

missing=()
for p in "${PKGS[@]}" "${BPO_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]}+${#BPO_PKGS[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
[ $updated -eq 1 ] || apt-get update -qq
main=() bpo=()
for p in "${missing[@]}"; do
	case " ${BPO_PKGS[*]} " in *" $p "*) bpo+=("$p") ;; *) main+=("$p") ;; esac
done
# No initramfs is needed for the VM kernels (the runner builds its own), so skip building one.
export INITRD=No
[ ${#main[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${main[@]}"
[ ${#bpo[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo[@]}"
echo "deps: done"
