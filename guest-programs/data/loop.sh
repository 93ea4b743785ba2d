# A busybox sh script using only builtins (no fork): arithmetic, loops, functions, strings.
square() { result=$(( $1 * $1 )); }
i=0
sum=0
while [ $i -lt 300 ]; do
  i=$((i + 1))
  sum=$((sum + i * i % 97))
done
echo "sum=$sum"
word=paging
square 12
echo "${#word} ${word%ing} ${word#pa} $result"
case "$word" in pag*) echo matched ;; *) echo no ;; esac
exit 3
