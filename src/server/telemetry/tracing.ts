import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ATTR, SPAN, TRACEPARENT_HEADER, TRACESTATE_HEADER } from "../../shared/telemetry.js";

/**
 * Spans of a task's path (src/shared/telemetry.ts has the tree). Without telemetry set up (setup.ts)
 * the API's tracer is the no-op one: every span here is non-recording and no header is sent.
 */
export const tracer = trace.getTracer("agent-agency");

/** W3C Trace Context, used directly: headers in and out do not depend on a globally registered propagator. */
const w3c = new W3CTraceContextPropagator();

/**
 * Whether this process traces (setup.ts turns it on with an exporter). Off, no trace context is read, kept
 * or sent: the API's no-op tracer would otherwise hand a caller's `traceparent` on to the task row and
 * the workers although nothing here records a span.
 */
let enabled = false;

/** @internal setup.ts, once the SDK is registered. */
export function enableTracing(): void {
  enabled = true;
}

/** Whether this process traces: a caller may skip reading a trace context it would not use. */
export const tracingEnabled = (): boolean => enabled;

/** What the helpers hand out when tracing is off: no span is started at all, so off costs next to nothing. */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** An incoming `traceparent` (and `tracestate`), as HTTP headers carry them. */
export interface TraceCarrier {
  traceparent?: string | null;
  tracestate?: string | null;
}

const getter = {
  keys: (c: TraceCarrier) => Object.keys(c),
  get: (c: TraceCarrier, key: string) =>
    key === TRACEPARENT_HEADER || key === TRACESTATE_HEADER ? (c[key] ?? undefined) : undefined,
};

/** The context a carrier names (a remote parent); the root context when it has none or it is malformed (W3C: ignored). */
export function contextFrom(carrier: TraceCarrier | null | undefined): Context {
  if (!enabled || !carrier?.traceparent) return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, carrier, getter);
}

/** The `traceparent` and `tracestate` headers for a context (the active one by default); none when it has no span. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const headers: Record<string, string> = {};
  if (!enabled) return headers;
  w3c.inject(ctx, headers, { set: (carrier, key, value) => (carrier[key] = value) });
  return headers;
}

/** A span's `traceparent`, to keep with what it started (a task row); null for a span that is not traced. */
export function traceparentOf(span: Span): string | null {
  return traceHeaders(trace.setSpan(ROOT_CONTEXT, span))[TRACEPARENT_HEADER] ?? null;
}

/** Ends a span as failed: error status with the message, and the error kind when the error has one. */
export function failSpan(span: Span, err: unknown, end = true): void {
  const message = err instanceof Error ? err.message : String(err);
  const kind = (err as { kind?: unknown } | null)?.kind;
  if (typeof kind === "string") span.setAttribute(ATTR.errorKind, kind);
  span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 1000) });
  if (end) span.end();
}

/**
 * Runs `fn` in a new span, a child of `parent` (default: the active context), active while `fn` runs (so
 * calls made inside carry it: `traceHeaders()`); ended when `fn` settles, with an error status when it throws.
 */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (!enabled) return fn(NO_SPAN);
  const parent = opts.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: opts.kind, attributes: opts.attributes }, parent);
  try {
    const value = await context.with(trace.setSpan(parent, span), () => fn(span));
    span.end();
    return value;
  } catch (err) {
    failSpan(span, err);
    throw err;
  }
}

/** The creation spans of a batch of new tasks: end them once the tasks are stored (or with the error that stopped it). */
export interface CreateSpans {
  end(err?: unknown): void;
}

/**
 * Starts the creation spans of a batch of new tasks (tasks.create, bulk creation, a rerun): one per task,
 * the root of the task's trace or a child of the caller's (`parent`, the request's headers). Sets each
 * row's `trace_parent`, which the task row keeps for the spans of its path to join.
 */
export function traceNewTasks(
  rows: { id: string; spec: { capability: string; riskTier: number }; trace_parent: string | null }[],
  parent?: TraceCarrier | null,
): CreateSpans {
  if (!enabled) return { end() {} };
  const ctx = contextFrom(parent);
  const spans = rows.map((r) => {
    const span = tracer.startSpan(
      SPAN.create,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.taskId]: r.id,
          [ATTR.capability]: r.spec.capability,
          [ATTR.riskTier]: r.spec.riskTier,
          [ATTR.taskState]: "queued",
        },
      },
      ctx,
    );
    r.trace_parent = traceparentOf(span);
    return span;
  });
  return {
    end(err) {
      for (const s of spans) err === undefined ? s.end() : failSpan(s, err);
    },
  };
}

/**
 * A `/cancel` sent to a worker (an operator's cancel, an attempt abandoned by recovery), as a span of the
 * task's trace (`traceParent`: its creation span's), active while it is sent so the request carries it.
 */
export function traceCancel<T extends { confirmed: boolean; detail: string }>(
  a: { taskId: string; number: number; workerName: string; traceParent: string | null },
  send: () => Promise<T>,
): Promise<T> {
  if (!enabled) return send();
  const attributes = { [ATTR.taskId]: a.taskId, [ATTR.attempt]: a.number, [ATTR.worker]: a.workerName };
  return inSpan(
    SPAN.cancel,
    { kind: SpanKind.CLIENT, attributes, parent: contextFrom({ traceparent: a.traceParent }) },
    async (span) => {
      const stop = await send();
      span.setAttribute(ATTR.outcome, stop.confirmed ? "confirmed" : "unconfirmed");
      if (!stop.confirmed) span.setStatus({ code: SpanStatusCode.ERROR, message: stop.detail.slice(0, 1000) });
      return stop;
    },
  );
}

/** What an attempt's end says, for its spans. */
export interface AttemptOutcome {
  outcome: "completed" | "failed" | "canceled" | "handed_back" | "taken_over";
  tries?: number;
  verdict?: string | null;
  /** The task's state once the end was stored; null when it was not stored here. */
  taskState?: string | null;
  error?: string;
}

/**
 * The spans of one attempt's run in this process: the claim (when it was claimed here rather than
 * re-attached), the attempt, and in it the council and the end. `run` makes the attempt's context
 * active for calls to its worker, whose tries are spans of their own (worker-client.ts).
 */
export class AttemptTrace {
  readonly context: Context;
  private readonly span: Span;
  private readonly attributes: Attributes;
  private readonly on = enabled;
  private ended = false;

  constructor(
    a: { taskId: string; number: number; traceParent: string | null; claimedAt?: number },
    workerName: string,
    reattached: boolean,
  ) {
    if (!this.on) {
      this.context = ROOT_CONTEXT;
      this.span = NO_SPAN;
      this.attributes = {};
      return;
    }
    this.attributes = { [ATTR.taskId]: a.taskId, [ATTR.attempt]: a.number, [ATTR.worker]: workerName };
    let parent = contextFrom({ traceparent: a.traceParent });
    if (!reattached) {
      const claim = tracer.startSpan(
        SPAN.claim,
        { attributes: { ...this.attributes, [ATTR.taskState]: "running" }, startTime: a.claimedAt },
        parent,
      );
      claim.end();
      parent = trace.setSpan(parent, claim);
    }
    this.span = tracer.startSpan(
      SPAN.attempt,
      { attributes: { ...this.attributes, [ATTR.reattached]: reattached } },
      parent,
    );
    this.context = trace.setSpan(parent, this.span);
  }

  /** Runs `fn` with the attempt's context active: worker calls made in it are children of the attempt. */
  run<T>(fn: () => T): T {
    if (!this.on) return fn();
    return context.with(this.context, fn);
  }

  /** A span for the council judging the attempt's result. */
  council<T extends { verdict: string } | null>(judge: () => Promise<T>): Promise<T> {
    if (!this.on) return judge();
    const span = tracer.startSpan(SPAN.council, { attributes: this.attributes }, this.context);
    return judge().then(
      (judgement) => {
        if (judgement) span.setAttribute(ATTR.verdict, judgement.verdict);
        span.end();
        return judgement;
      },
      (err: unknown) => {
        failSpan(span, err);
        throw err;
      },
    );
  }

  /** A span for storing the attempt's end; `store` resolves to the task's state after it (null: not stored here). */
  async end(outcome: AttemptOutcome, store: () => Promise<string | null>): Promise<void> {
    if (!this.on) {
      await store();
      return;
    }
    const span = tracer.startSpan(SPAN.end, { attributes: this.outcomeAttributes(outcome) }, this.context);
    let taskState: string | null = null;
    try {
      taskState = await store();
    } catch (err) {
      failSpan(span, err);
      this.finish({ ...outcome, taskState: null });
      throw err;
    }
    if (taskState) span.setAttribute(ATTR.taskState, taskState);
    if (outcome.error) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.slice(0, 1000) });
    span.end();
    this.finish({ ...outcome, taskState });
  }

  /** Ends the attempt's span (once). */
  finish(outcome: AttemptOutcome): void {
    if (!this.on || this.ended) return;
    this.ended = true;
    this.span.setAttributes(this.outcomeAttributes(outcome));
    if (outcome.taskState) this.span.setAttribute(ATTR.taskState, outcome.taskState);
    if (outcome.error) this.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.slice(0, 1000) });
    this.span.end();
  }

  private outcomeAttributes(o: AttemptOutcome): Attributes {
    return {
      ...this.attributes,
      [ATTR.outcome]: o.outcome,
      ...(o.tries !== undefined ? { [ATTR.tries]: o.tries } : {}),
      ...(o.verdict ? { [ATTR.verdict]: o.verdict } : {}),
    };
  }
}
