/* context.h - the engine's internal context entry points (the public ones are in blazeneo.h). */
#ifndef BZN_CONTEXT_H
#define BZN_CONTEXT_H

#include "backend.h"
#include "blazeneo.h"

/* bzn_ctx_create on a backend the caller made (tests: a fault-injecting backend); the
 * context owns it from here on, also when this fails. */
bzn_status bzn_ctx_create_on(const bzn_model *m, const bzn_ctx_options *opt, bzn_backend *backend, bzn_ctx **out,
                             bzn_error *err);

/* what bzn_ctx_create was given (scales and keep_fp32 cleared), and the model */
const bzn_ctx_options *bzn_ctx_options_of(const bzn_ctx *c);
const bzn_model *bzn_ctx_model(const bzn_ctx *c);

#endif
