import { z } from "zod";
import { taskIdSchema } from "../../shared/task-inputs.js";
import { safeText } from "../../shared/text.js";
import { publicProcedure, router, viewerProcedure } from "../trpc.js";
import { taskProofs } from "./proof.js";
import { readTrustedKeysFile } from "./trusted-keys.js";

export const provenanceRouter = router({
  /** Checks the whole log with the pinned keys: digests, leaf hashes, checkpoints; names the first bad record. */
  verify: viewerProcedure.query(({ ctx }) => ctx.services.provenance.verify()),
  list: viewerProcedure
    .input(
      z.object({
        taskId: safeText(z.string().min(1).max(64)).optional(),
        cursor: z
          .string()
          .regex(/^\d{1,19}$/, "cursor must be the nextCursor of a previous page")
          .optional(),
        limit: z.number().int().min(1).max(200).default(50),
      }),
    )
    .query(({ ctx, input }) =>
      ctx.services.provenance.list({
        limit: input.limit,
        ...(input.taskId ? { taskId: input.taskId } : {}),
        ...(input.cursor ? { afterSeq: input.cursor } : {}),
      }),
    ),
  /** The task's records with inclusion proofs against the latest signed checkpoint (the task page's Provenance tab). */
  proof: viewerProcedure
    .input(z.object({ taskId: taskIdSchema }))
    .query(({ ctx, input }) =>
      taskProofs(ctx.services.db, input.taskId, () => readTrustedKeysFile(ctx.services.provenance.trustedKeysFile)),
    ),
  publicKey: publicProcedure.query(({ ctx }) => ({
    keyId: ctx.services.provenance.keyId,
    fingerprint: ctx.services.provenance.keyId,
    verifierKey: ctx.services.provenance.verifierKey,
    origin: ctx.services.provenance.origin,
    pem: ctx.services.provenance.publicKeyPem,
  })),
});
