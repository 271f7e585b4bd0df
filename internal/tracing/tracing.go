// Package tracing builds Latchkey's OpenTelemetry tracer provider. Traces
// are off unless configured (LATCHKEY_TRACES_ENDPOINT or the OTEL_*
// variables, read by internal/config): then spans are batched and sent
// over OTLP/HTTP. Off, the provider is OpenTelemetry's no-op one and
// nothing is wrapped, so the request path pays nothing.
//
// Each package that makes spans takes the provider from what it is given
// (store.Options.TracerProvider) or from the span in its context, so no
// global provider is ever set.
package tracing

import (
	"context"
	"fmt"

	"github.com/latchkey/latchkey/internal/requestid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// RequestIDKey is the span attribute naming the HTTP request, the same id
// as the log lines' request_id and the X-Request-Id header.
const RequestIDKey = attribute.Key("latchkey.request_id")

// ScopeName is the instrumentation scope of every span Latchkey makes.
const ScopeName = "github.com/latchkey/latchkey"

// New returns the provider for tracesURL (config.Config.TracesURL), and the
// function that flushes and stops it at shutdown. An empty URL gives the
// no-op provider.
func New(ctx context.Context, tracesURL, version string) (trace.TracerProvider, func(context.Context) error, error) {
	if tracesURL == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL))
	if err != nil {
		return nil, nil, fmt.Errorf("traces exporter for %s: %w", tracesURL, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("latchkey"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, nil, fmt.Errorf("traces resource: %w", err)
	}
	tp := NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// NewProvider is an SDK provider whose every span started under a request
// carries its request id, whoever starts it: fosite makes spans of its own
// (Fosite.NewAccessRequest…) from the span in the context. Tests pass an
// in-memory exporter.
func NewProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(requestIDs{})}, opts...)...)
}

// requestIDs puts the request id of the context a span starts in on it.
type requestIDs struct{}

func (requestIDs) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	if id := requestid.FromContext(ctx); id != "" {
		s.SetAttributes(RequestIDKey.String(id))
	}
}
func (requestIDs) OnEnd(sdktrace.ReadOnlySpan)      {}
func (requestIDs) Shutdown(context.Context) error   { return nil }
func (requestIDs) ForceFlush(context.Context) error { return nil }

// Start starts a span under the one in ctx, with the provider of that span
// (a no-op when ctx carries none, as when traces are off).
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		// Off, or not sampled: no span, nothing allocated.
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(ScopeName).Start(ctx, name, trace.WithAttributes(attrs...))
}
