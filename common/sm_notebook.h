/* sm_notebook: Jupyter notebooks (.ipynb, nbformat 4) as submissions. A Python submission whose
 * content is notebook JSON is a notebook: its cells are rendered in order as text for the
 * model's prompt, and its code cells are joined into one module for the sandbox. Stored
 * outputs are never read: they are dropped. Used by the worker, the broker and the CLI. */
#ifndef SM_NOTEBOOK_H
#define SM_NOTEBOOK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "sm_error.h"

#define SM_NOTEBOOK_MAX_BYTES (16 * 1024 * 1024)
#define SM_NOTEBOOK_MAX_CELLS 2000

/* Whether text looks like notebook JSON (its first non-blank byte is '{'); a Python source
 * never starts so. Such a submission must then pass sm_notebook_check. */
bool sm_notebook_detect(const char *text);

/* Parses and checks a notebook: a JSON object with "nbformat": 4 and "cells", an array of at
 * most SM_NOTEBOOK_MAX_CELLS objects whose "cell_type" is markdown, code or raw and whose
 * "source" is a string or an array of strings. SM_EINVAL with a reason otherwise; on SM_OK
 * *notebook (when not NULL) is the parsed notebook (json_decref it). */
sm_code sm_notebook_check(const char *text, json_t **notebook, sm_err *err);

/* The cells as text in order, each after a marker line "### [cell N: markdown]" (or code, raw);
 * outputs are left out. *out is malloc'd. */
sm_code sm_notebook_render(const char *text, char **out, sm_err *err);

/* The code cells joined into one Python module, each after a comment "# [cell N]". Lines of
 * IPython syntax (starting with %, %% or !) are commented out; a cell that starts with a
 * cell magic (%%) is commented out whole. *out is malloc'd. */
sm_code sm_notebook_code(const char *text, char **out, sm_err *err);

#endif
