"""How the tests build i386 programs: Debian's i686 cross compiler, static (gcc-multilib, the
other way, conflicts with every cross compiler, and the toolchains need those)."""

CC = ["i686-linux-gnu-gcc", "-static"]
MISSING = "cannot build i386 programs (apt-get install gcc-i686-linux-gnu libc6-dev-i386-cross)"
