package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/extagram/extagram/internal/contract"
)

// BulkFill adds n posts to s in one transaction with multi-row inserts,
// every second one with a small image: benchmarks need thousands of posts,
// and CreatePost's one transaction per post would make the setup slow.
func BulkFill(ctx context.Context, s Store, n int) error {
	ss, ok := s.(*sqlStore)
	if !ok {
		return fmt.Errorf("BulkFill: %T is not an SQL store", s)
	}
	const batch = 250 // rows per INSERT, far below both databases' placeholder limits
	now := time.Now().UTC().Truncate(time.Microsecond)
	data := make([]byte, 1024)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	return ss.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < n; start += batch {
			var imageArgs, postArgs []any
			for i := start; i < min(start+batch, n); i++ {
				postID := contract.NewID()
				var imageID any
				if i%2 == 0 {
					id := contract.NewID()
					imageArgs = append(imageArgs, id[:], "image/jpeg", len(data), sum[:], 320, 240, data, ss.timeArg(now))
					imageID = id[:]
				}
				postArgs = append(postArgs, postID[:], fmt.Sprintf("bulk post %d", i), imageID, ss.timeArg(now))
			}
			if len(imageArgs) > 0 {
				q := `INSERT INTO images (id, content_type, size_bytes, sha256, width, height, data, created_at) VALUES ` +
					values(len(imageArgs)/8, "(?, ?, ?, ?, ?, ?, ?, ?)")
				if _, err := tx.ExecContext(ctx, q, imageArgs...); err != nil {
					return fmt.Errorf("BulkFill images: %w", err)
				}
			}
			q := `INSERT INTO posts (id, body, image_id, created_at) VALUES ` + values(len(postArgs)/4, "(?, ?, ?, ?)")
			if _, err := tx.ExecContext(ctx, q, postArgs...); err != nil {
				return fmt.Errorf("BulkFill posts: %w", err)
			}
		}
		return nil
	})
}

func values(rows int, row string) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}
