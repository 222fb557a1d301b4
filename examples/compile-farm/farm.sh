#!/bin/sh
# A compile farm: a generated C project of UNITS translation units built with
# make -j$(nproc). Under mosixrun over several nodes nproc counts the
# cluster's CPUs (the SMP view) and each compiler is placed when it starts
# (fork and forget): nothing in the Makefile knows about the cluster.
#
#   mosixrun --vcluster 3 -np 1 sh farm.sh DIR [UNITS]
#
# DIR/prog is the linked program (it prints a checksum of its units);
# DIR/nodes.log says on which node each compiler ran (MOSIX_NODE).
set -eu
dir=${1:?usage: farm.sh DIR [UNITS]}
units=${2:-200}
mkdir -p "$dir"
cd "$dir"
i=1
while [ "$i" -le "$units" ]; do
  # Enough work per unit that a compiler is worth placing (a few loops to unroll).
  cat > "u$i.c" <<SRC
static int table$i[64];
int unit$i(int x) {
  int s = 0;
  for (int k = 0; k < 64; ++k) table$i[k] = (k * $i) ^ x;
  for (int k = 0; k < 64; ++k) s += table$i[k] % ($i + 7);
  return s;
}
SRC
  i=$((i + 1))
done
{
  echo '#include <stdio.h>'
  i=1
  while [ "$i" -le "$units" ]; do echo "int unit$i(int);"; i=$((i + 1)); done
  echo 'int main(void) {'
  echo '  long sum = 0;'
  i=1
  while [ "$i" -le "$units" ]; do echo "  sum += unit$i(3);"; i=$((i + 1)); done
  printf '%s\n' '  printf("%ld\n", sum);'
  echo '  return 0;'
  echo '}'
} > main.c
# The compiler through a wrapper that notes its node, then becomes cc.
cat > cc-noted <<'SRC'
#!/bin/sh
echo "${MOSIX_NODE:-here}" >> nodes.log
exec cc "$@"
SRC
chmod +x cc-noted
cat > Makefile <<'SRC'
OBJS := $(patsubst %.c,%.o,$(sort $(wildcard u*.c))) main.o
prog: $(OBJS)
	cc -o $@ $(OBJS)
%.o: %.c
	./cc-noted -O2 -c $< -o $@
SRC
: > nodes.log
make -s -j"$(nproc)"
echo "built $units units with make -j$(nproc): $(./prog)"
