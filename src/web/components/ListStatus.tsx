/** "12+ tasks · Updating…" above a paged list: what is loaded, whether more pages exist, and a refetch in flight. */
export function ListStatus(props: {
  loaded: boolean;
  count: number;
  hasMore: boolean;
  updating: boolean;
  singular: string;
  plural: string;
}) {
  const { loaded, count, hasMore, updating, singular, plural } = props;
  return (
    <div className="list-status" aria-live="polite">
      <span>{loaded ? `${count}${hasMore ? "+" : ""} ${count === 1 ? singular : plural}` : ""}</span>
      <span className="muted">{updating && loaded ? "Updating…" : ""}</span>
    </div>
  );
}
