/* submit_map: the --map CSV of `stepmark submit FOLDER`: which student each file belongs to.
 * One line per file, "file,student_ref" (an optional header line "file,student_ref"; fields
 * may be quoted with "..." as in RFC 4180; a file is named by its name in the folder, a path's
 * folder part is ignored). */
#ifndef SM_SUBMIT_MAP_H
#define SM_SUBMIT_MAP_H

#include <stddef.h>

#include "sm_error.h"

typedef struct sm_submit_map {
    char **files;    /* base names */
    char **students; /* student references */
    size_t n;
} sm_submit_map;

/* Reads the CSV at path. SM_EINVAL (with "PATH:LINE: reason") for a malformed line, an empty
 * field, a student_ref over 200 bytes or a file named twice; SM_EIO when it cannot be read. */
sm_code sm_submit_map_load(const char *path, sm_submit_map *m, sm_err *err);
/* The student of the file whose base name is base, or NULL when the map does not name it. */
const char *sm_submit_map_find(const sm_submit_map *m, const char *base);
void sm_submit_map_free(sm_submit_map *m);

#endif
