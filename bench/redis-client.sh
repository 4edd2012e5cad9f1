#!/bin/sh
# Client side of the redis workload (scripts/bench.sh runs it through bench-run -S, which starts
# redis-server on a free 127.0.0.1 port first): a bounded redis-benchmark run, then a check that
# the server still stores and returns data correctly (a Lua script writes, reads back, deletes).
#   redis-client.sh PORT REQUESTS
set -eu
port=$1
n=$2
redis-benchmark -h 127.0.0.1 -p "$port" -q -n "$n" -c 16 -P 16 -r 100000 -d 128 \
    -t set,get,incr,lpush,lpop,sadd,hset,spop,zadd
k=20000
got=$(redis-cli -h 127.0.0.1 -p "$port" --no-raw EVAL "
  local s = 0
  for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'chk:' .. i, string.rep('x', i % 200) .. i) end
  for i = 1, tonumber(ARGV[1]) do
    local v = redis.call('GET', 'chk:' .. i)
    s = s + tonumber(string.sub(v, (i % 200) + 1))
  end
  for i = 1, tonumber(ARGV[1]) do redis.call('DEL', 'chk:' .. i) end
  return s" 0 $k)
want="(integer) $((k * (k + 1) / 2))"
if [ "$got" != "$want" ]; then
    echo "redis: FAIL: check returned '$got', want '$want'" >&2
    exit 1
fi
echo "redis ok checksum=$k:$((k * (k + 1) / 2))"
