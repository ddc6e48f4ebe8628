#!/usr/bin/env bash
# A STAND-IN for the Dockerfile's base image, made from Debian's own packages, for machines that reach
# Debian's apt but no container registry. Debian bookworm's python3 is 3.11.2, not the base's 3.11.11:
# close enough to build and run the image, not the image a registry would give. Usage: TAG (root only).
set -euo pipefail
tag=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/mlkube-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
ln -sf python3 "$root/usr/bin/python"
chmod 755 "$root"  # mktemp made it 0700: the image's / must be searchable by its non-root user
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change "LABEL io.mlkube.stand-in=debootstrap-bookworm-minbase" \
  --message "stand-in for $tag: debootstrap bookworm minbase + python3 (Debian's 3.11.2)" \
  - "$tag"
