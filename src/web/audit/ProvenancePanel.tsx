import { ErrorMessage } from "../components/ErrorMessage.js";
import { useHasRole } from "../components/useMe.js";
import { trpc } from "../trpc.js";

const PROBLEM_LABELS: Record<string, string> = {
  missing: "a record is missing",
  sequence: "records are repeated or out of order",
  payload: "a payload was altered",
  leaf: "a record was altered",
  "checkpoint-format": "a checkpoint is malformed",
  "checkpoint-unpinned": "a checkpoint is signed by a key that is not pinned",
  "checkpoint-signature": "a checkpoint's signature does not verify",
  "checkpoint-root": "a checkpoint does not match the records",
  truncated: "records were removed from the end",
  rewritten: "history was rewritten",
  "no-checkpoint": "no checkpoint verifies with the pinned keys",
};

/** The provenance log's state as the server checks it now (with the pinned keys), and what an outside party needs. */
export function ProvenancePanel() {
  const isAdmin = useHasRole("admin");
  const verify = trpc.provenance.verify.useQuery(undefined, { staleTime: 0 });
  const key = trpc.provenance.publicKey.useQuery(undefined, { staleTime: Number.POSITIVE_INFINITY });
  const r = verify.data;
  const first = r ? (r.firstBad ?? r.findings[0] ?? null) : null;

  return (
    <section className="provenance-panel" aria-labelledby="provenance-title">
      <div className="panel-head">
        <h2 id="provenance-title">Provenance log</h2>
        <button
          type="button"
          className="btn btn-small"
          disabled={verify.isFetching}
          onClick={() => void verify.refetch()}
        >
          {verify.isFetching ? "Verifying…" : "Verify again"}
        </button>
      </div>
      <p className="muted">
        Every decision (task created, dispatched, result, verdict, override, cancel) is a leaf of an append-only Merkle
        log (RFC 6962 hashing). After each batch the server signs a checkpoint of the whole log with Ed25519; it is
        verified here only with the keys pinned in the trusted-keys file, never with a key from the database.
      </p>
      {verify.error ? <ErrorMessage title="Could not verify the log:" error={verify.error} /> : null}
      {verify.isPending ? <p className="loading">Verifying every record…</p> : null}
      {r ? (
        <div
          className={r.ok ? "chain-state chain-ok" : "chain-state chain-bad"}
          data-testid="chain-state"
          role="status"
        >
          <strong>
            {r.ok
              ? r.checked
                ? `Intact: ${r.checked} ${r.checked === 1 ? "record" : "records"} verified, ${r.checkpointsVerified} signed ${r.checkpointsVerified === 1 ? "checkpoint" : "checkpoints"}.`
                : "Empty: no records yet."
              : first?.seq
                ? `Broken at record ${first.seq}: ${PROBLEM_LABELS[first.problem] ?? first.problem}.`
                : `Not verified: ${PROBLEM_LABELS[first?.problem ?? ""] ?? first?.problem}.`}
          </strong>
          {!r.ok ? r.findings.map((f) => <p key={`${f.problem}-${f.seq}-${f.reason}`}>{f.reason}</p>) : null}
          {r.trustedKeysError ? <p>{r.trustedKeysError}</p> : null}
          {!r.ok && r.firstBad ? <p>{r.checked} records before it verify; nothing after it can be trusted.</p> : null}
          <dl className="spec-grid">
            <div>
              <dt>Tree size</dt>
              <dd>{r.size}</dd>
            </div>
            <div className="wide">
              <dt>Root hash</dt>
              <dd>
                <code className="hash">{r.root}</code>
              </dd>
            </div>
            <div>
              <dt>Pinned keys</dt>
              <dd>{r.pinnedKeys}</dd>
            </div>
          </dl>
        </div>
      ) : null}
      <dl className="spec-grid" data-testid="provenance-key">
        <div className="wide">
          <dt>Signing key fingerprint</dt>
          <dd>
            <code>{key.data?.fingerprint ?? "…"}</code>
          </dd>
        </div>
        <div className="wide">
          <dt>Verifier key (pin this)</dt>
          <dd>
            <code className="hash">{key.data?.verifierKey ?? "…"}</code>
          </dd>
        </div>
      </dl>
      <div className="task-actions">
        {isAdmin ? (
          <a className="btn btn-small" href="/provenance/export.jsonl" download="log.jsonl">
            Export log (JSON Lines)
          </a>
        ) : null}
        <a className="btn btn-small" href="/provenance/checkpoint" download="checkpoint.txt">
          Latest checkpoint
        </a>
        <a className="btn btn-small" href="/provenance/public-key" download="key.pem">
          Public key (PEM)
        </a>
      </div>
      <p className="hint">
        Compare the fingerprint with the one the server printed at its first start, and keep the verifier key in a
        trusted-keys file outside this server. To verify without this server: save the log and a checkpoint, then run{" "}
        <code>npm run provenance:verify -- --file log.jsonl --checkpoint checkpoint.txt --public-key key.pem</code>. It
        checks every record, every checkpoint's signature and that the log extends the saved checkpoint (nothing removed
        or rewritten), and names the first bad record.
        {isAdmin ? "" : " Exporting the log needs the admin role."}
      </p>
    </section>
  );
}
