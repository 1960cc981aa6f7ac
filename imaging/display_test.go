package imaging

import "testing"

func TestDisplaySize(t *testing.T) {
	for o := 1; o <= 8; o++ {
		w, h := Result{Width: 64, Height: 48, Orientation: o}.DisplaySize()
		want := [2]int{64, 48}
		if o >= 5 {
			want = [2]int{48, 64}
		}
		if [2]int{w, h} != want {
			t.Errorf("orientation %d: %dx%d, want %dx%d", o, w, h, want[0], want[1])
		}
	}
}
