package feedsvc

import "testing"

func TestPageToken(t *testing.T) {
	for _, key := range []int64{1, 2, 127, 128, 1 << 20, 1<<62 - 1} {
		if got, err := DecodePageToken(EncodePageToken(key)); err != nil || got != key {
			t.Errorf("key %d: token %q decodes to %d, %v", key, EncodePageToken(key), got, err)
		}
	}
	if k, err := DecodePageToken(""); k != 0 || err != nil {
		t.Errorf("empty token: %d, %v", k, err)
	}
	valid := EncodePageToken(300)
	for _, tok := range []string{
		"garbage!", "AQ", "AA", "Ag", // bad alphabet, no key, version 0, version 2
		valid + "A", valid[:len(valid)-1], "AYCAgICAgICAgIAB", // trailing, cut, overlong varint
		"AQA", // key 0
		"AYGA", "AYCAAA",
	} {
		if k, err := DecodePageToken(tok); err == nil {
			t.Errorf("forged token %q accepted as key %d", tok, k)
		}
	}
}
