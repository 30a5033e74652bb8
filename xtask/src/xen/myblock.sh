#!/bin/sh
case "$1" in
add)
  f=$(xenstore-read "$XENBUS_PATH/params")
  # One at a time: two disks attach concurrently and `losetup -f` would
  # name the same free device to both.
  while ! mkdir /run/myblock.lock 2>/dev/null; do sleep 1; done
  dev=$(losetup -f)
  losetup "$dev" "$f"
  rmdir /run/myblock.lock
  xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$dev")"
  xenstore-write "$XENBUS_PATH/physical-device-path" "$dev"
  xenstore-write "$XENBUS_PATH/hotplug-status" connected
  ;;
remove)
  dev=$(xenstore-read "$XENBUS_PATH/physical-device-path" 2>/dev/null) && losetup -d "$dev"
  ;;
esac
exit 0
