# Dalli scenario for tests/clients/test_client_dalli.py.
# Usage: ruby dalli_check.rb PORT
# Runs each check against 127.0.0.1:PORT, prints "ok <check>" for each one that passed and exits
# non-zero at the first failure. Expects key "from_python" = "written by python" to exist, and
# leaves "from_dalli" (raw) for the caller to read back.
require 'dalli'
require 'logger'

port = Integer(ARGV.fetch(0))
Dalli.logger = Logger.new($stderr, level: Logger::WARN)
dc = Dalli::Client.new("127.0.0.1:#{port}", socket_timeout: 5, socket_max_failures: 1,
                       down_retry_delay: 60, compress: false)

# Dalli 3.0 answers a successful write with the item's new CAS value (an Integer) or true, and a
# refused one with false, nil or 0 depending on the command: compare outcomes, not exact objects.
def stored(result)
  result == true || (result.is_a?(Integer) && result.positive?) ? :stored : :refused
end

def check(name, got, want)
  unless got == want
    warn "FAIL #{name}: got #{got.inspect}, want #{want.inspect}"
    exit 1
  end
  puts "ok #{name}"
  $stdout.flush
end

check('protocol', dc.send(:protocol_implementation).name, 'Dalli::Protocol::Binary')
check('version', dc.version.values.first.to_s.match?(/\A\d+\.\d+/), true)

# set / get: a marshalled Ruby object and a raw string
check('set object', stored(dc.set('obj', { 'list' => [1, 2, 3], 'sym' => :x })), :stored)
check('get object', dc.get('obj'), { 'list' => [1, 2, 3], 'sym' => :x })
check('set raw', stored(dc.set('raw', 'plain bytes', 0, raw: true)), :stored)
check('get raw', dc.get('raw', raw: true), 'plain bytes')
check('get missing', dc.get('missing'), nil)
binary = (0..255).map(&:chr).join.b * 4
dc.set('bytes', binary, 0, raw: true)
check('get all byte values', dc.get('bytes', raw: true).b, binary)
dc.set('empty', '', 0, raw: true)
check('get empty', dc.get('empty', raw: true), '')
check('add existing', stored(dc.add('raw', 'x', 0, raw: true)), :refused)
check('add new', stored(dc.add('added', 'y', 0, raw: true)), :stored)
check('replace missing', stored(dc.replace('nope', 'x', 0, raw: true)), :refused)
check('replace missing stores nothing', dc.get('nope'), nil)
check('append', stored(dc.append('raw', '!')), :stored)
check('after append', dc.get('raw', raw: true), 'plain bytes!')

# a key another client wrote
check('read python key', dc.get('from_python', raw: true), 'written by python')
dc.set('from_dalli', 'written by dalli', 0, raw: true)

# get_multi
values = (1..50).to_h { |i| ["multi:#{i}", "value #{i}"] }
values.each { |k, v| dc.set(k, v) }
check('get_multi', dc.get_multi(*values.keys, 'multi:absent'), values)
check('get_multi empty', dc.get_multi, {})

# cas
dc.set('counter_obj', 10)
check('cas block', stored(dc.cas('counter_obj') { |v| v + 5 }), :stored)
check('after cas', dc.get('counter_obj'), 15)
check('cas missing', dc.cas('cas_absent') { |v| v }, nil)
value, token = dc.get_cas('counter_obj')
check('get_cas', value, 15)
check('set_cas', stored(dc.set_cas('counter_obj', 16, token)), :stored)
check('set_cas stale', stored(dc.set_cas('counter_obj', 17, token)), :refused)
check('after set_cas', dc.get('counter_obj'), 16)

# incr / decr (counters are raw decimal strings)
check('incr missing without default', dc.incr('ctr', 1), nil)
check('incr missing with default', dc.incr('ctr', 1, 0, 100), 100)
check('incr', dc.incr('ctr', 5), 105)
check('decr', dc.decr('ctr', 10), 95)
check('decr floor', dc.decr('ctr', 1000), 0)
dc.set('ctr2', '41', 0, raw: true)
check('incr raw', dc.incr('ctr2'), 42)
check('counter stored as text', dc.get('ctr2', raw: true), '42')

# delete
check('delete', stored(dc.delete('raw')), :stored)
check('after delete', dc.get('raw'), nil)
check('delete missing', stored(dc.delete('raw')), :refused)

# touch / gat with expiry
# TTL 2: a relative TTL ends at the server clock's 2nd tick, so these live at least a second.
dc.set('short', 'a', 2, raw: true)
dc.set('touched', 'b', 2, raw: true)
dc.set('gat', 'c', 2, raw: true)
check('touch', dc.touch('touched', 100), true)
check('touch missing', dc.touch('touch_absent', 100), nil)
check('gat', dc.gat('gat', 100), 'c')
sleep 3.2
check('expired', dc.get('short'), nil)
check('touched survives', dc.get('touched', raw: true), 'b')
check('gat survives', dc.get('gat', raw: true), 'c')

dc.close
puts 'done'
