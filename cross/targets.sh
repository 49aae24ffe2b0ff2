# Sourced by the cross/ scripts: what each package target is.
#   cross_target NAME   sets TRIPLE, GLIBC (the baseline: the newest GLIBC_ symbol version any
#                       artefact may need), DEB_ARCH, ORT_WHEEL_PLATFORM (empty: bundle no ORT),
#                       DEB_NAME, BOARD (one line for READMEs)
#
# Baselines:
#   aarch64 2.31  JetPack 5 (Ubuntu 20.04) has 2.31; JetPack 6 2.35, Raspberry Pi OS bookworm 2.36.
#   x86_64  2.28  the floor of the bundled ORT wheel (manylinux_2_28): no point being newer than the
#                 library we ship, and 2.28 reaches Debian 10, RHEL/Alma/Rocky 8 and Ubuntu 18.10+.
ORT_VERSION=1.31.1

cross_target() {
    case "$1" in
        raspberry-pi)
            TRIPLE=aarch64-unknown-linux-gnu GLIBC=2.31 DEB_ARCH=arm64 DEB_NAME=dysample
            ORT_WHEEL_PLATFORM=manylinux_2_28_aarch64
            BOARD="Raspberry Pi 4/5 (and any 64-bit ARM Linux with glibc >= 2.31), ONNX Runtime ${ORT_VERSION} CPU bundled" ;;
        jetson)
            TRIPLE=aarch64-unknown-linux-gnu GLIBC=2.31 DEB_ARCH=arm64 DEB_NAME=dysample-jetson
            ORT_WHEEL_PLATFORM=""
            BOARD="NVIDIA Jetson (JetPack 5 and 6), using JetPack's onnxruntime-gpu Python package" ;;
        x86_64-linux)
            TRIPLE=x86_64-unknown-linux-gnu GLIBC=2.28 DEB_ARCH=amd64 DEB_NAME=dysample
            ORT_WHEEL_PLATFORM=manylinux_2_28_x86_64
            BOARD="x86_64 Linux with glibc >= 2.28, ONNX Runtime ${ORT_VERSION} CPU bundled" ;;
        *)
            echo "unknown package target '$1' (raspberry-pi, jetson, x86_64-linux)" >&2
            return 2 ;;
    esac
}
