import { DiagLogLevel, diag } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { enableTracing } from "./tracing.js";

/** What telemetry reports through: a pino logger fits. */
export interface TelemetryLogger {
  warn(obj: object, msg: string): void;
}

export interface Telemetry {
  /** Where spans go (the OTLP/HTTP traces URL), or null when tracing is off. */
  readonly endpoint: string | null;
  /** Exports what is still buffered and stops; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

const listOf = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

/**
 * The OTLP/HTTP traces URL the standard variables name, or null when tracing is off: no
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SDK_DISABLED=true, or
 * OTEL_TRACES_EXPORTER without `otlp` (`none`). Throws on an endpoint that is not an http(s) URL.
 */
export function tracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return null;
  const exporters = listOf(env.OTEL_TRACES_EXPORTER);
  if (exporters.length && !exporters.includes("otlp")) return null;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim();
  // Spans go as JSON over OTLP/HTTP, which every collector's HTTP receiver (port 4318) takes; gRPC is another port.
  if (protocol === "grpc") {
    throw new Error(
      "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: the agency exports traces over OTLP/HTTP (JSON, a collector's port 4318); unset it or use http/json.",
    );
  }
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const [name, url] = specific
    ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", specific]
    : base
      ? ["OTEL_EXPORTER_OTLP_ENDPOINT", `${base.replace(/\/+$/, "")}/v1/traces`]
      : [null, null];
  if (!name || !url) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${name} must be an http(s) URL such as http://127.0.0.1:4318, got ${JSON.stringify(url)}.`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`${name} must be an http(s) URL such as http://127.0.0.1:4318, got ${JSON.stringify(url)}.`);
  }
  return url;
}

/**
 * Starts OpenTelemetry tracing for this process when the standard variables ask for it: the official
 * SDK for Node (NodeTracerProvider: AsyncLocalStorage context, W3C trace-context propagation) exporting
 * in batches over OTLP/HTTP (JSON) to OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, with the SDK's own reading
 * of OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_* and OTEL_SERVICE_NAME /
 * OTEL_RESOURCE_ATTRIBUTES (over `serviceName`). Without an endpoint nothing is installed: the API's
 * tracer stays the no-op one, and spans cost next to nothing.
 */
export function startTelemetry(opts: {
  serviceName: string;
  serviceVersion?: string;
  log: TelemetryLogger;
  env?: NodeJS.ProcessEnv;
}): Telemetry {
  const endpoint = tracesEndpoint(opts.env);
  if (!endpoint) return { endpoint: null, shutdown: async () => {} };
  // The SDK reports export failures (a collector down, refused headers) through diag: one warning each.
  diag.setLogger(
    {
      error: (message, ...args) => opts.log.warn({ otel: args.map(String).join(" ") }, `OpenTelemetry: ${message}`),
      warn: (message, ...args) => opts.log.warn({ otel: args.map(String).join(" ") }, `OpenTelemetry: ${message}`),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: opts.serviceName,
        ...(opts.serviceVersion ? { [ATTR_SERVICE_VERSION]: opts.serviceVersion } : {}),
      }),
    )
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }))],
  });
  provider.register();
  enableTracing();
  let stopped: Promise<void> | null = null;
  return {
    endpoint,
    shutdown: () => {
      stopped ??= provider.shutdown().catch((err: unknown) => {
        opts.log.warn({ err }, "OpenTelemetry: exporting the last spans failed");
      });
      return stopped;
    },
  };
}
