"""dmesg: read the kernel log from /dev/kmsg (or syslog(2), or a saved file) and print it
the way util-linux dmesg does, plus JSON Lines with sequence numbers and lost-record counts."""
