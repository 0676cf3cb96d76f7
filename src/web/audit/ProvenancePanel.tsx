import { ErrorMessage } from "../components/ErrorMessage.js";
import { useHasRole } from "../components/useMe.js";
import { trpc } from "../trpc.js";

const PROBLEM_LABELS: Record<string, string> = {
  missing: "a record is missing",
  sequence: "records are repeated or out of order",
  link: "a record does not link to the one before",
  payload: "a payload was altered",
  hash: "a record was altered",
  key: "a record is signed with an unknown key",
  signature: "a signature does not verify",
};

/** The provenance chain's state as the server checks it now, with what an outside party needs to check it too. */
export function ProvenancePanel() {
  const isAdmin = useHasRole("admin");
  const verify = trpc.provenance.verify.useQuery(undefined, { staleTime: 0 });
  const key = trpc.provenance.publicKey.useQuery(undefined, { staleTime: Number.POSITIVE_INFINITY });
  const r = verify.data;

  return (
    <section className="provenance-panel" aria-labelledby="provenance-title">
      <div className="panel-head">
        <h2 id="provenance-title">Provenance chain</h2>
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
        Every decision (task created, dispatched, result, verdict, override, cancel) is a record holding the SHA-256 of
        the one before, signed with Ed25519.
      </p>
      {verify.error ? <ErrorMessage title="Could not verify the chain:" error={verify.error} /> : null}
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
                ? `Intact: ${r.checked} ${r.checked === 1 ? "record" : "records"} verified.`
                : "Empty: no records yet."
              : `Broken at record ${r.firstBad?.seq}: ${PROBLEM_LABELS[r.firstBad?.problem ?? ""] ?? r.firstBad?.problem}.`}
          </strong>
          {!r.ok && r.firstBad ? <p>{r.firstBad.reason}</p> : null}
          {!r.ok ? <p>{r.checked} records before it verify; nothing after it can be trusted.</p> : null}
          <dl className="spec-grid">
            <div>
              <dt>Head record</dt>
              <dd>{r.headSeq ?? "—"}</dd>
            </div>
            <div className="wide">
              <dt>Head hash</dt>
              <dd>
                <code className="hash">{r.headHash ?? "—"}</code>
              </dd>
            </div>
            <div>
              <dt>Signing key</dt>
              <dd>
                <code>{key.data?.keyId ?? "…"}</code>
              </dd>
            </div>
          </dl>
        </div>
      ) : null}
      <div className="task-actions">
        {isAdmin ? (
          <a className="btn btn-small" href="/provenance/export.jsonl" download="chain.jsonl">
            Export chain (JSON Lines)
          </a>
        ) : null}
        <a className="btn btn-small" href="/provenance/public-key" download="key.pem">
          Public key (PEM)
        </a>
      </div>
      <p className="hint">
        To verify an export without this server: save the chain and the public key, then run{" "}
        <code>npm run provenance:verify -- --file chain.jsonl --public-key key.pem</code>. It checks every link, hash
        and signature and names the first bad record.
        {isAdmin ? "" : " Exporting the chain needs the admin role."}
      </p>
    </section>
  );
}
