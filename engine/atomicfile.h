/*
 * atomicfile.h - the library's one file writer (bzn_writer_* in blazeneo.h), used by every
 * file the library and the tool write: weight files, calibration caches, PNG masks, the CLI's
 * reports, traces and charts.
 *
 * Where the target is a regular file (or does not exist yet), the bytes go to a temporary
 * file next to it ("<target>.tmp.XXXXXX", created exclusively, so two writers never collide),
 * which is flushed to disk and renamed over the target: readers see the old file or the
 * complete new one, never half of it. A symbolic link is followed: the file it names is the
 * one replaced, the link stays. A device, FIFO or socket, and "-" (standard output), are
 * written in place, since replacing them would put a regular file where a device node was.
 * Every write error is kept with its errno, so the message names the caller's path and the
 * real cause ("No space left on device"). The new file takes the permissions of the file it
 * replaces, or 0666 less the umask.
 *
 * Temporary files in flight are listed in a fixed table that bzn_writer_remove_temporaries()
 * (async-signal-safe) walks, so a program's SIGINT/SIGTERM handler can remove them.
 */
#ifndef BZN_ATOMICFILE_H
#define BZN_ATOMICFILE_H

#include "blazeneo.h"

#endif
