package cow

import "testing"

func TestSmokeForkIsolation(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			e := newEnv(t, 32<<20)
			s := e.space(cfg.orders(e.a.Geometry()))
			addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
			write(t, s, addr, fill('a', 3<<20))
			e.check()
			c := e.fork(s)
			e.check()
			write(t, s, addr+4096, fill('p', 100))
			write(t, c, addr+8192, fill('c', 100))
			e.check()
			expect(t, c, addr+4096, fill('a', 100))
			expect(t, s, addr+8192, fill('a', 100))
			expect(t, s, addr+4096, fill('p', 100))
			expect(t, c, addr+8192, fill('c', 100))
			expect(t, c, addr+3<<20, fill(0, 4096))
		})
	}
}
