# Dalli with a SASL username/password (PLAIN over the binary protocol), for
# tests/clients/test_client_auth.py.
# Usage: ruby dalli_sasl.rb PORT USER PASSWORD good|bad
# Prints "ok <check>" per passed check and "done" at the end; exits 1 at the first failure.
require 'dalli'

def check(name, got, want)
  unless got == want
    warn "FAIL #{name}: got #{got.inspect}, want #{want.inspect}"
    exit 1
  end
  puts "ok #{name}"
  $stdout.flush
end

port, user, password, expect = ARGV
Dalli.logger.level = Logger::FATAL
dc = Dalli::Client.new("127.0.0.1:#{port}", username: user, password: password,
                       socket_timeout: 3, socket_max_failures: 1, down_retry_delay: 60)
if expect == 'good'
  check('set', dc.set('dalli:sasl', 'hello over sasl', 0, raw: true).is_a?(Integer), true)
  check('get', dc.get('dalli:sasl', raw: true), 'hello over sasl')
  check('incr', dc.incr('dalli:sasl:ctr', 1, 0, 10), 10)
  check('delete', dc.delete('dalli:sasl'), true)
else
  refused = begin
    dc.set('dalli:refused', 'x', 0, raw: true)
    false
  rescue Dalli::DalliError
    true
  end
  check('set refused', refused, true)
end
dc.close
puts 'done'
