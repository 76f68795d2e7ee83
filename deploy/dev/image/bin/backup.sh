#!/bin/sh
# db-backup: one pg_dump -F c into /backups, keeping the newest $BACKUP_RETENTION dumps.
set -eu
# Nanoseconds and the pid keep two backups of the same second apart (and in time order).
stamp=$(date -u +%Y-%m-%d_%H-%M-%S-%N)
file="/backups/backup_${stamp}-$$.dump"
if [ -e "$file" ]; then echo "backup: $file already exists" >&2; exit 1; fi
pg_dump -h "${PGHOST:-postgres}" -U "${PGUSER:-app}" -d "${PGDATABASE:-app}" -F c -f "$file.part"
mv "$file.part" "$file"
echo "backup written: $file ($(wc -c <"$file") bytes)"
keep=${BACKUP_RETENTION:-24}
ls -1 /backups/backup_*.dump 2>/dev/null | sort -r | tail -n +$((keep + 1)) | while read -r old; do
  rm -f "$old" && echo "retention: removed $old"
done
