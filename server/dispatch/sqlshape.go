package dispatch

// The store keeps each connection's most recent statements prepared (server/store), but a
// statement with an IN list or a multi-row VALUES has a text of its own for every length, so the
// dispatcher's batches, whose sizes vary from one to hundreds, prepared almost every statement
// anew: parsing them cost as much as running them. These helpers give such statements a few
// lengths only — powers of two — so that their texts repeat and stay prepared.

// padIDs returns ids grown to the next power of two by repeating its last id, which leaves an IN
// list's meaning unchanged. ids is returned as is when its length already is one.
func padIDs(ids []int) []int {
	n := paddedLen(len(ids))
	if n == len(ids) {
		return ids
	}
	out := make([]int, n)
	copy(out, ids)
	for i := len(ids); i < n; i++ {
		out[i] = ids[len(ids)-1]
	}
	return out
}

// paddedLen is the smallest power of two at least n (0 for 0).
func paddedLen(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	if n == 0 {
		return 0
	}
	return p
}

// powerOfTwoChunks cuts n rows into runs whose lengths are powers of two no longer than max (a
// power of two), longest first: 37 rows with max 32 are 32 + 4 + 1. It returns the run lengths.
func powerOfTwoChunks(n, max int) []int {
	var out []int
	for n > 0 {
		c := max
		for c > n {
			c >>= 1
		}
		out = append(out, c)
		n -= c
	}
	return out
}

// roundLimit rounds a LIMIT of 8 or more down to a multiple of 8 (LIMIT is written into the
// statement's text). It never returns less than 1 for n ≥ 1.
func roundLimit(n int) int {
	if n < 8 {
		return n
	}
	return n &^ 7
}
