package envoy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TLSCheckInterval is how often, at most, a TLS handshake makes a CertReloader look at
// the modification times of its files: a rotated certificate (cert-manager, a
// Kubernetes Secret volume) is served at the latest this long after it was written.
const TLSCheckInterval = 5 * time.Second

// ErrTLSReload is wrapped by every error of CertReloader.Reload: the new files were
// not applied and the last good certificate (and client CA) keeps serving.
var ErrTLSReload = errors.New("envoy: tls reload")

// CertReloader serves a listener's certificate and, for mTLS, its client CA from the
// files of a TLSConfig, and picks up new files without a restart: on Reload (SIGHUP)
// and, automatically, during a TLS handshake when the files' modification time or size
// changed (looked at no more often than TLSCheckInterval). New files that do not load
// — missing, half-written, a key that does not match the certificate, a CA file without
// a certificate — are refused with one error log line per distinct state of the files,
// and the last good certificate keeps serving: a listener never loses TLS and a bad
// file never stops the process. It starts no goroutines and needs no Close. Safe for
// concurrent use.
type CertReloader struct {
	files TLSConfig
	log   *slog.Logger
	now   func() time.Time

	cur       atomic.Pointer[certState]
	nextCheck atomic.Int64 // unix nanoseconds before which handshakes do not stat the files
	mu        sync.Mutex   // serialises loads
	failed    fileStamp    // stamp of the files that last failed to load (logged once)
}

// certState is one loaded set of files; never modified once stored.
type certState struct {
	stamp fileStamp
	leaf  *x509.Certificate
	base  *tls.Config // Certificates, ClientCAs, ClientAuth, MinVersion; NextProtos per listener
	// perProtos caches base with a listener's NextProtos (see ServerConfig).
	perProtos sync.Map // string → *tls.Config
}

// fileStamp identifies the state of the files: modification time and size of each.
type fileStamp [3]struct {
	mod  int64
	size int64
}

// NewCertReloader reads t's files (an error when they do not load: start-up must fail
// on a bad certificate) and returns a reloader that logs to log (nil: slog.Default())
// and uses now for TLSCheckInterval (nil: time.Now). It returns nil, nil when TLS is
// not enabled.
func NewCertReloader(t TLSConfig, log *slog.Logger, now func() time.Time) (*CertReloader, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	r := &CertReloader{files: t, log: log, now: now}
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(st)
	r.nextCheck.Store(now().Add(TLSCheckInterval).UnixNano())
	return r, nil
}

// Leaf returns the certificate being served.
func (r *CertReloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// ServerConfig returns a server *tls.Config (TLS 1.2 or newer; client certificates
// required and verified against the client CA when one is configured) that always
// uses the current files, announcing nextProtos in ALPN ("h2" for gRPC; none for the
// HTTP/1.1 check listener). Pass it to credentials.NewTLS or tls.NewListener.
func (r *CertReloader) ServerConfig(nextProtos ...string) *tls.Config {
	protos := append([]string(nil), nextProtos...)
	key := fmt.Sprint(protos)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := r.current()
			if c, ok := st.perProtos.Load(key); ok {
				return c.(*tls.Config), nil
			}
			c := st.base.Clone()
			c.NextProtos = protos
			got, _ := st.perProtos.LoadOrStore(key, c)
			return got.(*tls.Config), nil
		},
	}
}

// current returns the state to serve, first re-reading the files if they changed and
// TLSCheckInterval has passed since the last look. Only one handshake looks; the others
// use the current state meanwhile.
func (r *CertReloader) current() *certState {
	st := r.cur.Load()
	now := r.now()
	next := r.nextCheck.Load()
	if now.UnixNano() < next || !r.nextCheck.CompareAndSwap(next, now.Add(TLSCheckInterval).UnixNano()) {
		return st
	}
	stamp, err := r.stamp()
	if err == nil && stamp == st.stamp {
		return st
	}
	r.reload(false)
	return r.cur.Load()
}

// Reload re-reads the files now, whether or not they changed (SIGHUP). On error the
// last good certificate and client CA keep serving and the error wraps ErrTLSReload.
// A nil CertReloader (TLS off) does nothing.
func (r *CertReloader) Reload() error {
	if r == nil {
		return nil
	}
	return r.reload(true)
}

func (r *CertReloader) reload(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	st, err := r.load()
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrTLSReload, err)
		// Log each bad state of the files once (a handshake looks every interval).
		if stamp, _ := r.stamp(); force || stamp != r.failed { // a missing file stamps as zero
			r.failed = stamp
			r.log.Error("tls files not reloaded; the previous certificate keeps serving",
				"cert_file", r.files.CertFile, "serial", old.leaf.SerialNumber.String(), "err", err.Error())
		}
		return err
	}
	r.failed = fileStamp{}
	if !force && st.stamp == old.stamp {
		return nil
	}
	r.cur.Store(st)
	r.log.Info("tls files reloaded", "cert_file", r.files.CertFile, "serial", st.leaf.SerialNumber.String(),
		"not_after", st.leaf.NotAfter.UTC().Format(time.RFC3339), "client_ca", r.files.ClientCAFile != "")
	return nil
}

// stamp stats the files.
func (r *CertReloader) stamp() (fileStamp, error) {
	var s fileStamp
	for i, name := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return s, err
		}
		s[i].mod, s[i].size = fi.ModTime().UnixNano(), fi.Size()
	}
	return s, nil
}

// load reads the files into a new state. The stamp is taken before the files are read,
// so a change during the read is seen by the next look.
func (r *CertReloader) load() (*certState, error) {
	stamp, err := r.stamp()
	if err != nil {
		return nil, fmt.Errorf("envoy: load tls files: %w", err)
	}
	c, err := r.files.Load()
	if err != nil {
		return nil, err
	}
	cert := &c.Certificates[0]
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("envoy: load tls certificate: %w", err)
		}
	}
	return &certState{stamp: stamp, leaf: leaf, base: c}, nil
}
