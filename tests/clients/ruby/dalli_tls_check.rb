# Dalli over TLS (ssl_context) for tests/clients/test_client_tls.py.
# Usage: ruby dalli_tls_check.rb PORT CA_FILE
# Prints "ok <check>" per passed check, exits non-zero at the first failure; leaves
# "from_dalli_tls" for the caller to read back.
require 'dalli'
require 'logger'
require 'openssl'

port = Integer(ARGV.fetch(0))
ctx = OpenSSL::SSL::SSLContext.new
ctx.ca_file = ARGV.fetch(1)
ctx.verify_mode = OpenSSL::SSL::VERIFY_PEER
ctx.verify_hostname = false
Dalli.logger = Logger.new($stderr, level: Logger::WARN)
dc = Dalli::Client.new("127.0.0.1:#{port}", socket_timeout: 5, socket_max_failures: 1,
                       down_retry_delay: 60, compress: false, ssl_context: ctx)

def check(name, got, want)
  unless got == want
    warn "FAIL #{name}: got #{got.inspect}, want #{want.inspect}"
    exit 1
  end
  puts "ok #{name}"
  $stdout.flush
end

check('version', dc.version.values.first.to_s.match?(/\A\d+\.\d+/), true)
dc.set('from_dalli_tls', 'sealed', 0, raw: true)
check('get raw', dc.get('from_dalli_tls', raw: true), 'sealed')
check('get object', (dc.set('obj', [1, 'two', :three]) && dc.get('obj')), [1, 'two', :three])
big = 'x' * 300_000
dc.set('big', big, 0, raw: true)
check('get large', dc.get('big', raw: true), big)
many = (1..50).to_h { |i| ["m#{i}", i.to_s] }
many.each { |k, v| dc.set(k, v, 0, raw: true) }
# Dalli 3.0.6's get_multi fails over ssl_context inside Dalli itself (its select loop asks the
# SSL socket for a `server` attribute only its TCP socket has), so the keys are read one by one.
check('get each', many.keys.to_h { |k| [k, dc.get(k, raw: true)] }, many)
check('incr', (dc.set('ctr', '10', 0, raw: true) && dc.incr('ctr', 5)), 15)
check('delete', dc.delete('ctr') && dc.get('ctr').nil?, true)
puts 'done'
