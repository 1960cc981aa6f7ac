// Package telegramtest is a stand-in for the Telegram Bot API, for tests:
// an HTTP server on 127.0.0.1 with Telegram's URL layout
// (/bot<TOKEN>/<method>, /file/bot<TOKEN>/<path>) and JSON shapes for
// getMe, sendMessage, sendPhoto, getUpdates (a long poll; a second poller
// while one waits gets 409 Conflict, as from Telegram), getFile, the file
// download, setWebhook and deleteWebhook (with a webhook set, updates are
// POSTed to it with the secret header, as Telegram does). Parameters are
// read from a query, a URL-encoded or multipart form, or a JSON body, the
// ways Bot API clients send them.
//
// It records every call, lets a test play a user who sends the bot a text,
// a photo or a file, and can be told to fail: answer an HTTP error (429
// with retry_after, 500, ...), hang, or drop the connection as a server
// that is down does.
package telegramtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // photo sizes of the photos a test sends
	_ "image/jpeg"
	_ "image/png"
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

	"github.com/go-telegram/bot/models"
)

// Call is one request to a method.
type Call struct {
	Method string
	// Params are the request's fields; JSON values other than strings are
	// kept as their JSON text.
	Params map[string]string
	// Files are the uploaded files of a multipart request, by field.
	Files map[string]File
	// Status is the HTTP status answered; 0 while the call hangs, and for
	// good when the client went away without an answer or the connection
	// was dropped.
	Status int
	// Delivered is true when the call took effect: a message was sent
	// (sendMessage, sendPhoto), whether or not its answer reached the
	// client.
	Delivered bool
	// MessageID is the id of a delivered message.
	MessageID int
	// Gone is true when the client went away (gave up, or died) while the
	// call hung, without an answer.
	Gone bool
	// Updates are the ids of the updates a getUpdates call returned.
	Updates []int64
	Time    time.Time
}

// File is an uploaded file.
type File struct {
	Name string
	Data []byte
}

// Fault is how calls are answered instead of normally.
type Fault struct {
	// Status, when not 0, answers with this HTTP status and Telegram's
	// error body; a 429 carries RetryAfter (seconds) in its parameters.
	Status     int
	RetryAfter int
	// Hang leaves calls without an answer until the fault is changed (then
	// they are answered as the new setting says) or the client goes away
	// (then they take no effect, and are marked Gone).
	Hang bool
	// Deliver, with Hang, makes a message call take effect before it
	// hangs: the message is sent, its answer never arrives.
	Deliver bool
	// Drop closes the connection without an answer, as a server that is
	// down (or a network that breaks) would.
	Drop bool
}

// Server is a running stand-in.
type Server struct {
	// URL is the API's base URL, for the client's API URL setting.
	URL string
	// Token is the bot token it accepts; other tokens get 401.
	Token string

	srv     *httptest.Server
	closing chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	calls   []*Call
	faults  map[string]Fault // by method; "" for every method
	release chan struct{}    // closed when the faults change
	nextMsg map[string]int   // next message id by chat
	files   map[string][]byte
	fileSeq int
	// updates are those not yet confirmed; nextUpdate the next id.
	updates    []models.Update
	nextUpdate int64
	polling    bool // a getUpdates call is waiting
	webhook    webhook
	deliverer  chan struct{} // closed to stop the webhook deliverer
	delivering sync.WaitGroup
}

type webhook struct {
	url, secret string
}

// New starts a stand-in that accepts token.
func New(token string) *Server {
	s := &Server{
		Token:      token,
		closing:    make(chan struct{}),
		changed:    make(chan struct{}),
		faults:     map[string]Fault{},
		release:    make(chan struct{}),
		nextMsg:    map[string]int{},
		files:      map[string][]byte{},
		nextUpdate: 100001,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Start starts a stand-in that is closed when the test ends.
func Start(t testing.TB, token string) *Server {
	s := New(token)
	t.Cleanup(s.Close)
	return s
}

// Close answers the calls that hang with 503, stops the webhook deliverer
// and the server.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return
	default:
	}
	close(s.closing)
	s.stopDeliverer()
	s.mu.Unlock()
	s.delivering.Wait()
	s.srv.CloseClientConnections()
	s.srv.Close()
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
	close(s.release)
	s.release = make(chan struct{})
}

func (s *Server) faultFor(method string) (Fault, chan struct{}) {
	f, ok := s.faults[method]
	if !ok {
		f = s.faults[""]
	}
	return f, s.release
}

// Calls returns the calls of method so far ("" for every call), in the
// order they arrived.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callsLocked(method)
}

func (s *Server) callsLocked(method string) []Call {
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, cloneCall(c))
		}
	}
	return out
}

func cloneCall(c *Call) Call {
	cc := *c
	cc.Updates = slices.Clone(c.Updates)
	return cc
}

// Sent returns the messages the bot sent (sendMessage and sendPhoto calls
// that took effect), in order.
func (s *Server) Sent() []Call {
	var out []Call
	for _, c := range s.Calls("") {
		if c.Delivered {
			out = append(out, c)
		}
	}
	return out
}

// Wait returns the calls once cond holds for them, checking at every new
// call or change, or an error when ctx ends first.
func (s *Server) Wait(ctx context.Context, cond func(calls []Call) bool) ([]Call, error) {
	for {
		s.mu.Lock()
		calls, changed := s.callsLocked(""), s.changed
		s.mu.Unlock()
		if cond(calls) {
			return calls, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return calls, fmt.Errorf("telegramtest: condition not met: %w", ctx.Err())
		}
	}
}

// notify wakes Wait; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Webhook returns the webhook set by setWebhook ("" when none).
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhook.url, s.webhook.secret
}

// AddFile stores data as a file the bot may fetch with getFile, and
// returns its file_id.
func (s *Server) AddFile(data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fileSeq++
	id := fmt.Sprintf("file-%d", s.fileSeq)
	s.files[id] = data
	return id
}

// PushUpdate queues an update for the bot (its update_id is set when 0)
// and returns its id.
func (s *Server) PushUpdate(u models.Update) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = s.nextUpdate
	}
	s.nextUpdate = max(s.nextUpdate, u.ID+1)
	s.updates = append(s.updates, u)
	s.notify()
	return u.ID
}

// UserText plays user writing text in chat, and returns the update.
func (s *Server) UserText(chat, user int64, text string) models.Update {
	m := s.UserMessage(chat, user)
	m.Text = text
	if strings.HasPrefix(text, "/") {
		cmd, _, _ := strings.Cut(text, " ")
		m.Entities = []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0, Length: len(cmd)}}
	}
	return s.push(m)
}

// UserPhoto plays user sending photo (as Telegram's compressed photo) with
// caption in chat, and returns the update.
func (s *Server) UserPhoto(chat, user int64, photo []byte, caption string) models.Update {
	id := s.AddFile(photo)
	size := models.PhotoSize{FileID: id, FileUniqueID: "u" + id, FileSize: len(photo)}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(photo)); err == nil {
		size.Width, size.Height = cfg.Width, cfg.Height
	}
	m := s.UserMessage(chat, user)
	m.Photo = []models.PhotoSize{size}
	m.Caption = caption
	return s.push(m)
}

// UserFile plays user sending a file (a document: sent as a file, not
// compressed) named name, of type mimeType, with caption in chat, and
// returns the update.
func (s *Server) UserFile(chat, user int64, name, mimeType string, data []byte, caption string) models.Update {
	id := s.AddFile(data)
	m := s.UserMessage(chat, user)
	m.Document = &models.Document{FileID: id, FileUniqueID: "u" + id, FileName: name, MimeType: mimeType, FileSize: int64(len(data))}
	m.Caption = caption
	return s.push(m)
}

func (s *Server) push(m *models.Message) models.Update {
	u := models.Update{Message: m}
	u.ID = s.PushUpdate(u)
	return u
}

// UserMessage returns a new message of user in chat (a private chat when
// they are the same), with the chat's next message id, for a test to fill
// in and queue with PushUpdate.
func (s *Server) UserMessage(chat, user int64) *models.Message {
	s.mu.Lock()
	key := strconv.FormatInt(chat, 10)
	s.nextMsg[key]++
	id := s.nextMsg[key]
	s.mu.Unlock()
	c := models.Chat{ID: chat, Type: models.ChatTypePrivate, FirstName: "Test"}
	if chat != user {
		c = models.Chat{ID: chat, Type: models.ChatTypeSupergroup, Title: "Test group"}
	}
	return &models.Message{
		ID:   id,
		Date: int(time.Now().Unix()),
		Chat: c,
		From: &models.User{ID: user, FirstName: "Test", Username: "user" + strconv.FormatInt(user, 10)},
	}
}

// Pending returns the ids of the updates not yet confirmed by a getUpdates
// offset or a webhook answer.
func (s *Server) Pending() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for _, u := range s.updates {
		ids = append(ids, u.ID)
	}
	return ids
}

// apiResponse is the Bot API's answer.
type apiResponse struct {
	OK          bool            `json:"ok"`
	Result      any             `json:"result,omitempty"`
	ErrorCode   int             `json:"error_code,omitempty"`
	Description string          `json:"description,omitempty"`
	Parameters  *responseParams `json:"parameters,omitempty"`
}

type responseParams struct {
	RetryAfter int `json:"retry_after,omitempty"`
}

// apiError is a Bot API error answer.
type apiError struct {
	code        int
	description string
	retryAfter  int
}

func errorFor(code int, retryAfter int) *apiError {
	desc := map[int]string{
		http.StatusBadRequest:          "Bad Request",
		http.StatusUnauthorized:        "Unauthorized",
		http.StatusForbidden:           "Forbidden: bot was blocked by the user",
		http.StatusNotFound:            "Not Found",
		http.StatusConflict:            "Conflict",
		http.StatusTooManyRequests:     "Too Many Requests: retry after " + strconv.Itoa(retryAfter),
		http.StatusInternalServerError: "Internal Server Error",
		http.StatusBadGateway:          "Bad Gateway",
	}[code]
	if desc == "" {
		desc = http.StatusText(code)
	}
	return &apiError{code: code, description: desc, retryAfter: retryAfter}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/file/bot"); ok {
		s.serveFile(w, r, rest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		writeAPI(w, nil, errorFor(http.StatusNotFound, 0))
		return
	}
	if token != s.Token {
		writeAPI(w, nil, errorFor(http.StatusUnauthorized, 0))
		return
	}
	params, files, err := readParams(r)
	if err != nil {
		writeAPI(w, nil, &apiError{code: http.StatusBadRequest, description: "Bad Request: " + err.Error()})
		return
	}
	call := &Call{Method: method, Params: params, Files: files, Time: time.Now()}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.notify()
	fault, release := s.faultFor(method)
	s.mu.Unlock()

	for fault.Hang {
		if fault.Deliver && !call.Delivered && isMessage(method) {
			s.mu.Lock()
			s.deliver(call)
			s.mu.Unlock()
		}
		select {
		case <-release:
			if r.Context().Err() == nil {
				s.mu.Lock()
				fault, release = s.faultFor(method)
				s.mu.Unlock()
				continue
			}
			s.gone(call)
			return
		case <-r.Context().Done():
			s.gone(call)
			return
		case <-s.closing:
			s.answer(w, call, nil, errorFor(http.StatusServiceUnavailable, 0))
			return
		}
	}
	switch {
	case fault.Drop:
		dropConnection(w)
		return
	case fault.Status != 0:
		s.answer(w, call, nil, errorFor(fault.Status, fault.RetryAfter))
		return
	}
	result, apiErr := s.method(r.Context(), call)
	s.answer(w, call, result, apiErr)
}

// gone records that the client of a hanging call went away: the call
// stays without an answer (Status 0), and takes no effect unless it
// already had.
func (s *Server) gone(call *Call) {
	s.mu.Lock()
	call.Gone = true
	s.notify()
	s.mu.Unlock()
}

func isMessage(method string) bool { return method == "sendMessage" || method == "sendPhoto" }

// answer writes the answer and records its status.
func (s *Server) answer(w http.ResponseWriter, call *Call, result any, apiErr *apiError) {
	code := writeAPI(w, result, apiErr)
	s.mu.Lock()
	call.Status = code
	s.notify()
	s.mu.Unlock()
}

func writeAPI(w http.ResponseWriter, result any, apiErr *apiError) int {
	resp := apiResponse{OK: true, Result: result}
	code := http.StatusOK
	if apiErr != nil {
		code = apiErr.code
		resp = apiResponse{ErrorCode: apiErr.code, Description: apiErr.description}
		if apiErr.retryAfter > 0 {
			resp.Parameters = &responseParams{RetryAfter: apiErr.retryAfter}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
	return code
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, as from a port nothing listens on
	}
	conn.Close()
}

// method runs an API method.
func (s *Server) method(ctx context.Context, call *Call) (any, *apiError) {
	p := call.Params
	switch call.Method {
	case "getMe":
		return models.User{ID: 7000001, IsBot: true, FirstName: "Extagram test bot", Username: "extagram_test_bot"}, nil
	case "sendMessage":
		if strings.TrimSpace(p["text"]) == "" {
			return nil, &apiError{code: 400, description: "Bad Request: message text is empty"}
		}
		if utf16Len(p["text"]) > 4096 {
			return nil, &apiError{code: 400, description: "Bad Request: message is too long"}
		}
		return s.sendMessage(call)
	case "sendPhoto":
		if _, ok := call.Files["photo"]; !ok && p["photo"] == "" {
			return nil, &apiError{code: 400, description: "Bad Request: there is no photo in the request"}
		}
		if utf16Len(p["caption"]) > 1024 {
			return nil, &apiError{code: 400, description: "Bad Request: message caption is too long"}
		}
		return s.sendMessage(call)
	case "getUpdates":
		return s.getUpdates(ctx, call)
	case "getFile":
		s.mu.Lock()
		data, ok := s.files[p["file_id"]]
		s.mu.Unlock()
		if !ok {
			return nil, &apiError{code: 400, description: "Bad Request: invalid file_id"}
		}
		if len(data) > 20<<20 {
			return nil, &apiError{code: 400, description: "Bad Request: file is too big"}
		}
		return models.File{FileID: p["file_id"], FileUniqueID: "u" + p["file_id"], FileSize: int64(len(data)), FilePath: "documents/" + p["file_id"]}, nil
	case "setWebhook":
		u, err := url.Parse(p["url"])
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, &apiError{code: 400, description: "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"}
		}
		s.mu.Lock()
		s.stopDeliverer()
		if p["drop_pending_updates"] == "true" {
			s.updates = nil
		}
		s.webhook = webhook{url: p["url"], secret: p["secret_token"]}
		s.startDeliverer()
		s.mu.Unlock()
		return true, nil
	case "deleteWebhook":
		s.mu.Lock()
		s.stopDeliverer()
		s.webhook = webhook{}
		if p["drop_pending_updates"] == "true" {
			s.updates = nil
		}
		s.mu.Unlock()
		return true, nil
	}
	return nil, errorFor(http.StatusNotFound, 0)
}

// sendMessage delivers a message (if a hang has not already) and returns
// it.
func (s *Server) sendMessage(call *Call) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !call.Delivered {
		s.deliver(call)
	}
	chat := call.Params["chat_id"]
	m := models.Message{ID: call.MessageID, Date: int(call.Time.Unix()), Chat: chatOf(chat)}
	if call.Method == "sendPhoto" {
		m.Caption = call.Params["caption"]
		m.Photo = []models.PhotoSize{{FileID: fmt.Sprintf("sent-%s-%d", chat, call.MessageID), FileUniqueID: fmt.Sprintf("usent-%s-%d", chat, call.MessageID)}}
	} else {
		m.Text = call.Params["text"]
	}
	return m, nil
}

// deliver records a message as sent; s.mu must be held.
func (s *Server) deliver(call *Call) {
	chat := call.Params["chat_id"]
	s.nextMsg[chat]++
	call.Delivered, call.MessageID = true, s.nextMsg[chat]
	s.notify()
}

func chatOf(chat string) models.Chat {
	if id, err := strconv.ParseInt(chat, 10, 64); err == nil {
		if id > 0 {
			return models.Chat{ID: id, Type: models.ChatTypePrivate}
		}
		return models.Chat{ID: id, Type: models.ChatTypeSupergroup, Title: "Test group"}
	}
	return models.Chat{ID: -1009999999999, Type: models.ChatTypeChannel, Username: strings.TrimPrefix(chat, "@"), Title: "Test channel"}
}

// getUpdates confirms the updates before offset, then returns those after
// it, waiting up to the call's timeout for one. Telegram allows one
// poller: a call while another waits is answered 409.
func (s *Server) getUpdates(ctx context.Context, call *Call) (any, *apiError) {
	offset, _ := strconv.ParseInt(call.Params["offset"], 10, 64)
	limit, _ := strconv.Atoi(call.Params["limit"])
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	timeout, _ := strconv.Atoi(call.Params["timeout"])
	timeout = min(max(timeout, 0), 50)
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()

	s.mu.Lock()
	if s.webhook.url != "" {
		s.mu.Unlock()
		return nil, &apiError{code: 409, description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}
	}
	if s.polling {
		s.mu.Unlock()
		return nil, &apiError{code: 409, description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}
	}
	s.polling = true
	defer func() { s.polling = false; s.notify(); s.mu.Unlock() }()
	for {
		if offset > 0 {
			s.updates = slices.DeleteFunc(s.updates, func(u models.Update) bool { return u.ID < offset })
		}
		out := []models.Update{}
		for _, u := range s.updates {
			if u.ID >= offset && len(out) < limit {
				out = append(out, u)
				call.Updates = append(call.Updates, u.ID)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
		case <-deadline.C:
			s.mu.Lock()
			return out, nil
		case <-ctx.Done():
			s.mu.Lock()
			return out, nil
		case <-s.closing:
			s.mu.Lock()
			return out, nil
		}
	}
}

// startDeliverer POSTs the pending updates to the webhook, in order, until
// stopped; s.mu must be held.
func (s *Server) startDeliverer() {
	stop := make(chan struct{})
	s.deliverer = stop
	hook := s.webhook
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the site under test has a self-signed certificate
	}
	s.delivering.Add(1)
	go func() {
		defer s.delivering.Done()
		defer client.CloseIdleConnections()
		pause := 50 * time.Millisecond
		for {
			s.mu.Lock()
			var next *models.Update
			if len(s.updates) > 0 {
				u := s.updates[0]
				next = &u
			}
			changed := s.changed
			s.mu.Unlock()
			if next == nil {
				select {
				case <-changed:
					continue
				case <-stop:
					return
				}
			}
			if post(client, hook, next) == nil {
				s.mu.Lock()
				s.updates = slices.DeleteFunc(s.updates, func(u models.Update) bool { return u.ID == next.ID })
				s.notify()
				s.mu.Unlock()
				pause = 50 * time.Millisecond
				continue
			}
			select {
			case <-time.After(pause):
				pause = min(2*pause, 2*time.Second)
			case <-stop:
				return
			}
		}
	}()
}

// stopDeliverer stops the webhook deliverer, if any; s.mu must be held.
func (s *Server) stopDeliverer() {
	if s.deliverer != nil {
		close(s.deliverer)
		s.deliverer = nil
	}
}

func post(client *http.Client, hook webhook, u *models.Update) error {
	body, err := json.Marshal(u)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, hook.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if hook.secret != "" {
		req.Header.Set("X-Telegram-Bot-Api-Secret-Token", hook.secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}

// serveFile serves /file/bot<TOKEN>/<path>.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, rest string) {
	token, path, ok := strings.Cut(rest, "/")
	if !ok || token != s.Token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	data, found := s.files[strings.TrimPrefix(path, "documents/")]
	call := &Call{Method: "file", Params: map[string]string{"path": path}, Time: time.Now()}
	s.calls = append(s.calls, call)
	fault, _ := s.faultFor("file")
	s.notify()
	s.mu.Unlock()
	switch {
	case fault.Drop:
		dropConnection(w)
		return
	case fault.Status != 0:
		http.Error(w, http.StatusText(fault.Status), fault.Status)
	case !found:
		http.Error(w, "Not Found", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	}
	s.mu.Lock()
	call.Status = http.StatusOK
	if fault.Status != 0 {
		call.Status = fault.Status
	} else if !found {
		call.Status = http.StatusNotFound
	}
	s.notify()
	s.mu.Unlock()
}

// readParams reads a call's parameters from the query and a URL-encoded,
// multipart or JSON body.
func readParams(r *http.Request) (map[string]string, map[string]File, error) {
	params := map[string]string{}
	for k, v := range r.URL.Query() {
		params[k] = v[0]
	}
	files := map[string]File{}
	if r.Method != http.MethodPost {
		return params, files, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, nil, err
	}
	if len(body) == 0 {
		return params, files, nil // a method without parameters
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			return nil, nil, err
		}
		for k, v := range r.MultipartForm.Value {
			params[k] = v[0]
		}
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
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, nil, err
		}
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
	case "application/json":
		var m map[string]json.RawMessage
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&m); err != nil {
			return nil, nil, err
		}
		for k, raw := range m {
			var str string
			if json.Unmarshal(raw, &str) == nil {
				params[k] = str
			} else {
				params[k] = string(raw)
			}
		}
	}
	return params, files, nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
