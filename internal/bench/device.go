package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The device-poll scenario (RFC 8628): devices polling the token endpoint
// while nobody approves them, the answer authorization_pending. A poll
// must be one indexed read and no write; a device polling faster than its
// interval gets slow_down and costs a write, so each worker polls a ring
// of device codes, each no sooner than its interval: a worker that comes
// round to a code too early starts another device instead (outside the
// figures' meaning, but inside the op's time until the ring is big enough:
// the first second or so of a run). A slow_down answer counts as an error.

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// devicePollsPerWorker is the rate each worker's ring is sized for before
// the run (codes = rate × interval), so that it rarely has to grow during
// the measurement.
const devicePollsPerWorker = 400

type deviceRing struct {
	r        *Runner
	codes    []string
	last     []time.Time
	next     int
	interval time.Duration
}

func (r *Runner) deviceClient(ctx context.Context) (client, error) {
	r.deviceOnce.Do(func() {
		r.device, r.deviceErr = r.register(ctx, map[string]any{"client_name": "bench-device", "token_endpoint_auth_method": "none",
			"grant_types": []string{deviceGrantType}, "scope": "read"})
	})
	return r.device, r.deviceErr
}

// authorize starts one device: its device_code and interval.
func (r *Runner) authorizeDevice(ctx context.Context) (string, time.Duration, error) {
	m, err := r.post(ctx, r.http, "/oauth2/device_authorization", client{}, url.Values{"client_id": {r.device.id}, "scope": {"read"}})
	if err != nil {
		return "", 0, err
	}
	code, _ := m["device_code"].(string)
	interval, _ := m["interval"].(float64)
	if code == "" || interval <= 0 {
		return "", 0, fmt.Errorf("device authorization answered %v", m)
	}
	return code, time.Duration(interval) * time.Second, nil
}

func (d *deviceRing) start(ctx context.Context) error {
	code, interval, err := d.r.authorizeDevice(ctx)
	if err != nil {
		return err
	}
	d.interval = interval
	// Inserted at next: never polled, so it is the one polled now.
	d.codes = append(d.codes[:d.next], append([]string{code}, d.codes[d.next:]...)...)
	d.last = append(d.last[:d.next], append([]time.Time{{}}, d.last[d.next:]...)...)
	return nil
}

func (r *Runner) devicePoll(ctx context.Context) (op, error) {
	if _, err := r.deviceClient(ctx); err != nil {
		return nil, err
	}
	d := &deviceRing{r: r}
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	// The rest of the ring in parallel: tens of thousands of devices
	// one after another would take longer than the run.
	n := devicePollsPerWorker * int(d.interval/time.Second)
	codes := make([]string, n-1)
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			var err error
			for i := w; i < len(codes) && err == nil; i += 8 {
				codes[i], _, err = r.authorizeDevice(ctx)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	d.codes = append(d.codes, codes...)
	d.last = make([]time.Time, len(d.codes))
	return func(ctx context.Context) error {
		// A tenth of the interval spare: the server forgives that much.
		d.next %= len(d.codes)
		if due := d.last[d.next]; !due.IsZero() && time.Since(due) < d.interval+d.interval/10 {
			if err := d.start(ctx); err != nil {
				return err
			}
		}
		i := d.next
		d.next++
		d.last[i] = time.Now()
		return r.pollOnce(ctx, d.codes[i])
	}, nil
}

// pollOnce polls one device code and wants authorization_pending.
func (r *Runner) pollOnce(ctx context.Context, code string) error {
	form := url.Values{"grant_type": {deviceGrantType}, "device_code": {code}, "client_id": {r.device.id}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.PublicURL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(data, &m)
	if resp.StatusCode != http.StatusBadRequest || m.Error != "authorization_pending" {
		return fmt.Errorf("poll: %d %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return nil
}
