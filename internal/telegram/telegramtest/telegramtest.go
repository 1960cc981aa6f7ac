// Package telegramtest is a stand-in for the Telegram Bot API, for tests:
// Telegram's URL layout (/bot<TOKEN>/<method>, /file/bot<TOKEN>/<path>)
// and JSON shapes for getMe, sendMessage, sendPhoto, getUpdates (a long
// poll; a second poller gets 409), getFile, the file download (recorded as
// method "file"), setWebhook and deleteWebhook (updates are then POSTed to
// the webhook with the secret header). It records every call, plays users
// who send the bot a text, a photo or a file, and can be told to fail.
package telegramtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"
)

// Call is one request to a method.
type Call struct {
	Method string
	Params map[string]string // JSON values other than strings as JSON text
	Files  map[string]File   // the uploaded files of a multipart request
	// Status is the HTTP status answered: 0 while the call hangs, and for
	// good when the connection was dropped or the client went away.
	Status int
	// Delivered: the call sent a message, whether or not its answer
	// reached the client.
	Delivered bool
	MessageID int  // of a delivered message
	Gone      bool // the client went away while the call hung
	Time      time.Time
}

// File is an uploaded file.
type File struct {
	Name string
	Data []byte
}

// Fault is how calls are answered instead of normally.
type Fault struct {
	Status     int // an HTTP error with Telegram's body, when not 0
	RetryAfter int // seconds, in a 429's parameters
	// Hang leaves calls without an answer until the fault changes (then
	// they are answered as the new setting says) or the client goes away.
	Hang    bool
	Deliver bool // with Hang: the message is sent, its answer never comes
	Drop    bool // the connection is closed without an answer
}

// Server is a running stand-in.
type Server struct {
	URL   string // the API's base URL, for the client's API URL setting
	token string // the bot token it accepts; others get 401
	srv   *httptest.Server

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	calls      []*Call
	faults     map[string]Fault // by method; "" for every method
	nextMsg    map[string]int   // next message id by chat
	files      map[string][]byte
	updates    []models.Update // not yet confirmed
	nextUpdate int64
	polling    bool // a getUpdates call is waiting
	hook       webhook
}

type webhook struct{ url, secret string }

// Start starts a stand-in that accepts token, closed when the test ends:
// calls that still hang then end as Gone.
func Start(t testing.TB, token string) *Server {
	s := &Server{token: token, changed: make(chan struct{}), faults: map[string]Fault{},
		nextMsg: map[string]int{}, files: map[string][]byte{}, nextUpdate: 100001}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	var hooks sync.WaitGroup
	hooks.Go(func() { s.deliverHooks(t.Context()) })
	t.Cleanup(func() {
		hooks.Wait()
		s.srv.CloseClientConnections() // ends the hangs and long polls
		s.srv.Close()
	})
	return s
}

// SetFault makes calls of method ("" for every method without a fault of
// its own) answer as f says, from now on; the zero Fault answers normally
// again. Calls that hang are released to the new setting.
func (s *Server) SetFault(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, method)
	} else {
		s.faults[method] = f
	}
	s.notify()
}

func (s *Server) fault(method string) Fault {
	if f, ok := s.faults[method]; ok {
		return f
	}
	return s.faults[""]
}

// Calls returns the calls of method ("" for every call) in arrival order.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, *c)
		}
	}
	return out
}

// Sent returns the messages the bot sent (sendMessage and sendPhoto calls
// that took effect), in order.
func (s *Server) Sent() []Call {
	return slices.DeleteFunc(s.Calls(""), func(c Call) bool { return !c.Delivered })
}

// Wait returns the calls once cond holds for them, checking at every new
// call or change, or an error when ctx ends first.
func (s *Server) Wait(ctx context.Context, cond func(calls []Call) bool) ([]Call, error) {
	for {
		s.mu.Lock()
		changed := s.changed // taken first: a change after it closes it
		s.mu.Unlock()
		if calls := s.Calls(""); cond(calls) {
			return calls, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Calls(""), fmt.Errorf("telegramtest: condition not met: %w", ctx.Err())
		}
	}
}

// notify wakes the waiters; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitChange waits, with s.mu (held) released meanwhile, for a change or
// the end of ctx.
func (s *Server) waitChange(ctx context.Context) {
	changed := s.changed
	s.mu.Unlock()
	select {
	case <-changed:
	case <-ctx.Done():
	}
	s.mu.Lock()
}

// Webhook returns the webhook set by setWebhook ("" when none).
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hook.url, s.hook.secret
}

// UserText plays user writing text in chat, and returns the update.
func (s *Server) UserText(chat, user int64, text string) models.Update {
	return s.user(chat, user, func(m *models.Message) {
		m.Text = text
		if cmd, _, _ := strings.Cut(text, " "); strings.HasPrefix(cmd, "/") {
			m.Entities = []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0, Length: len(cmd)}}
		}
	})
}

// UserPhoto plays user sending photo (as Telegram's compressed photo) with
// caption in chat, and returns the update.
func (s *Server) UserPhoto(chat, user int64, photo []byte, caption string) models.Update {
	return s.user(chat, user, func(m *models.Message) {
		id := s.addFile(photo)
		m.Photo, m.Caption = []models.PhotoSize{{FileID: id, FileUniqueID: "u" + id, FileSize: len(photo)}}, caption
	})
}

// UserFile plays user sending a file (a document: not compressed) named
// name, of type mimeType, in chat, and returns the update. The message says
// the file's size when sized (Telegram's may leave it out).
func (s *Server) UserFile(chat, user int64, name, mimeType string, data []byte, sized bool) models.Update {
	return s.user(chat, user, func(m *models.Message) {
		id := s.addFile(data)
		m.Document = &models.Document{FileID: id, FileUniqueID: "u" + id, FileName: name, MimeType: mimeType}
		if sized {
			m.Document.FileSize = int64(len(data))
		}
	})
}

// user queues a message of user in chat (private when they are the same)
// that fill completes, with s.mu held, and returns its update.
func (s *Server) user(chat, user int64, fill func(*models.Message)) models.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strconv.FormatInt(chat, 10)
	s.nextMsg[key]++
	c := models.Chat{ID: chat, Type: models.ChatTypePrivate, FirstName: "Test"}
	if chat != user {
		c = models.Chat{ID: chat, Type: models.ChatTypeSupergroup, Title: "Test group"}
	}
	from := &models.User{ID: user, FirstName: "Test", Username: "user" + strconv.FormatInt(user, 10)}
	m := &models.Message{ID: s.nextMsg[key], Date: int(time.Now().Unix()), Chat: c, From: from}
	fill(m)
	u := models.Update{ID: s.nextUpdate, Message: m}
	s.nextUpdate++
	s.updates = append(s.updates, u)
	s.notify()
	return u
}

// addFile stores data for getFile, and returns its file_id; s.mu must be held.
func (s *Server) addFile(data []byte) string {
	id := fmt.Sprintf("file-%d", len(s.files)+1)
	s.files[id] = data
	return id
}

// apiError is a Bot API error answer.
type apiError struct {
	code        int
	description string
	retryAfter  int
}

func errorFor(code int, retryAfter int) *apiError {
	return &apiError{code, http.StatusText(code), retryAfter}
}

func badRequest(why string) *apiError {
	return &apiError{http.StatusBadRequest, "Bad Request: " + why, 0}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// The body is read first: the server notices a client that goes away
	// (r.Context ends) only once it is.
	params, files, err := readParams(r)
	path, isFile := strings.CutPrefix(r.URL.Path, "/file")
	rest, ok := strings.CutPrefix(path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	switch {
	case !ok || !ok2:
		s.answer(w, nil, nil, errorFor(http.StatusNotFound, 0))
		return
	case token != s.token:
		s.answer(w, nil, nil, errorFor(http.StatusUnauthorized, 0))
		return
	case err != nil:
		s.answer(w, nil, nil, badRequest(err.Error()))
		return
	}
	if isFile {
		method, params = "file", map[string]string{"path": method}
	}
	call := &Call{Method: method, Params: params, Files: files, Time: time.Now()}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.notify()
	f := s.fault(method)
	for f.Hang {
		if f.Deliver && !call.Delivered && (method == "sendMessage" || method == "sendPhoto") {
			s.deliver(call)
		}
		s.waitChange(r.Context())
		if r.Context().Err() != nil {
			call.Gone = true
			s.notify()
			s.mu.Unlock()
			return
		}
		f = s.fault(method)
	}
	s.mu.Unlock()
	switch {
	case f.Drop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler) // which drops the connection too
		}
		_ = conn.(*net.TCPConn).SetLinger(0) // a reset, as from a port nothing listens on
		conn.Close()
	case f.Status != 0:
		s.answer(w, call, nil, errorFor(f.Status, f.RetryAfter))
	default:
		result, apiErr := s.method(r.Context(), call)
		s.answer(w, call, result, apiErr)
	}
}

// answer writes the Bot API's answer (a file as is), and records it.
func (s *Server) answer(w http.ResponseWriter, call *Call, result any, e *apiError) {
	code, resp := http.StatusOK, map[string]any{"ok": true, "result": result}
	if e != nil {
		code, resp = e.code, map[string]any{"ok": false, "error_code": e.code, "description": e.description}
		if e.retryAfter > 0 {
			resp["parameters"] = map[string]int{"retry_after": e.retryAfter}
		}
	}
	if data, ok := result.([]byte); ok {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(resp)
	}
	if call != nil {
		s.mu.Lock()
		call.Status = code
		s.notify()
		s.mu.Unlock()
	}
}

// method runs an API method.
func (s *Server) method(ctx context.Context, call *Call) (any, *apiError) {
	p := call.Params
	switch call.Method {
	case "getMe":
		return models.User{ID: 7000001, IsBot: true, FirstName: "Extagram test bot", Username: "extagram_test_bot"}, nil
	case "sendMessage", "sendPhoto":
		text, limit := p["text"], 4096
		if _, ok := call.Files["photo"]; call.Method == "sendPhoto" && !ok && p["photo"] == "" {
			return nil, badRequest("there is no photo in the request")
		} else if call.Method == "sendPhoto" {
			text, limit = p["caption"], 1024
		} else if strings.TrimSpace(text) == "" {
			return nil, badRequest("message text is empty")
		}
		if len(utf16.Encode([]rune(text))) > limit {
			return nil, badRequest("message is too long")
		}
		return s.sendMessage(call), nil
	case "getUpdates":
		return s.getUpdates(ctx, call)
	case "getFile", "file":
		id := cmp.Or(p["file_id"], strings.TrimPrefix(p["path"], "documents/"))
		s.mu.Lock()
		data, ok := s.files[id]
		s.mu.Unlock()
		switch {
		case !ok:
			return nil, badRequest("invalid file_id")
		case call.Method == "file":
			return data, nil
		}
		return models.File{FileID: id, FileUniqueID: "u" + id, FileSize: int64(len(data)), FilePath: "documents/" + id}, nil
	case "setWebhook", "deleteWebhook":
		hook := webhook{p["url"], p["secret_token"]}
		if u, err := url.Parse(hook.url); call.Method == "setWebhook" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			return nil, badRequest("bad webhook: An HTTPS URL must be provided for webhook")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hook = hook
		return true, nil
	}
	return nil, errorFor(http.StatusNotFound, 0)
}

// sendMessage delivers a message (if a hang has not) and returns it.
func (s *Server) sendMessage(call *Call) models.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !call.Delivered {
		s.deliver(call)
	}
	chat := call.Params["chat_id"]
	m := models.Message{ID: call.MessageID, Date: int(call.Time.Unix()), Text: call.Params["text"]}
	m.Chat.ID, _ = strconv.ParseInt(chat, 10, 64)
	if call.Method == "sendPhoto" {
		m.Caption = call.Params["caption"]
		m.Photo = []models.PhotoSize{{FileID: fmt.Sprintf("sent-%s-%d", chat, call.MessageID), FileUniqueID: fmt.Sprintf("usent-%s-%d", chat, call.MessageID)}}
	}
	return m
}

// deliver records a message as sent; s.mu must be held.
func (s *Server) deliver(call *Call) {
	chat := call.Params["chat_id"]
	s.nextMsg[chat]++
	call.Delivered, call.MessageID = true, s.nextMsg[chat]
	s.notify()
}

// getUpdates confirms the updates before offset, then returns the others,
// waiting up to the call's timeout for one; one poller at a time.
func (s *Server) getUpdates(ctx context.Context, call *Call) (any, *apiError) {
	offset, _ := strconv.ParseInt(call.Params["offset"], 10, 64)
	timeout, _ := strconv.Atoi(call.Params["timeout"])
	ctx, cancel := context.WithTimeout(ctx, time.Duration(min(max(timeout, 0), 50))*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hook.url != "" || s.polling { // a webhook is set, or another poller waits
		return nil, &apiError{409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running", 0}
	}
	s.polling = true
	defer func() { s.polling = false; s.notify() }()
	for {
		s.updates = slices.DeleteFunc(s.updates, func(u models.Update) bool { return u.ID < offset })
		if len(s.updates) > 0 || ctx.Err() != nil {
			return append([]models.Update{}, s.updates...), nil
		}
		s.waitChange(ctx)
	}
}

// deliverHooks POSTs the pending updates in order to the webhook, when one
// is set, every 50 ms until ctx ends.
func (s *Server) deliverHooks(ctx context.Context) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the site under test has a self-signed certificate
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		hook, pending := s.hook, slices.Clone(s.updates)
		s.mu.Unlock()
		for _, u := range pending {
			body, _ := json.Marshal(u) // models.Update always encodes
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.url, bytes.NewReader(body))
			if hook.url == "" || err != nil {
				break
			}
			req.Header.Set("Content-Type", "application/json")
			if hook.secret != "" {
				req.Header.Set("X-Telegram-Bot-Api-Secret-Token", hook.secret)
			}
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode/100 != 2 {
				break
			}
			s.mu.Lock()
			s.updates = slices.DeleteFunc(s.updates, func(v models.Update) bool { return v.ID == u.ID })
			s.notify()
			s.mu.Unlock()
		}
	}
}

// readParams reads a call's parameters from the query and a URL-encoded,
// multipart or JSON body.
func readParams(r *http.Request) (map[string]string, map[string]File, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseMultipartForm(64 << 20); err != nil && len(body) > 0 && !errors.Is(err, http.ErrNotMultipart) {
		return nil, nil, err
	}
	params, files := map[string]string{}, map[string]File{}
	for k, v := range r.Form {
		params[k] = v[0]
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, nil, err
		}
		for k, raw := range m {
			var str string
			if json.Unmarshal(raw, &str) != nil {
				str = string(raw)
			}
			params[k] = str
		}
	}
	if r.MultipartForm != nil {
		for k, fhs := range r.MultipartForm.File {
			f, err := fhs[0].Open()
			if err != nil {
				return nil, nil, err
			}
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return nil, nil, err
			}
			files[k] = File{Name: fhs[0].Filename, Data: data}
		}
	}
	return params, files, nil
}
