# A tiny stand-in for the Rails models `gitlab-rails runner` snippets use to make
# an admin token without a browser. Tokens land in tokens.json, which the sim's
# app reads on every API and Git request.
require 'json'
require 'fileutils'
require 'date'
require 'time'

SIM_TOKENS = ENV.fetch('SIM_TOKENS_FILE', '/var/opt/gitlab/sim/tokens.json')

class Integer
  def days
    self * 86_400
  end
  alias day days
end

class Integer
  def from_now
    Time.now + self
  end
end

# GitLab keeps a unique index on personal_access_tokens.token_digest: inserting a
# token whose value exists already fails in PostgreSQL, whatever the Ruby around it.
module PG
  class UniqueViolation < StandardError; end
end

class PersonalAccessToken
  attr_accessor :scopes, :name, :expires_at, :token, :user, :revoked

  def initialize(user:, scopes: [], name: '', expires_at: nil, revoked: false, token: nil,
                 **_rest)
    @user = user
    @scopes = scopes.map(&:to_s)
    @name = name
    @expires_at = expires_at
    @revoked = revoked
    @token = token
    @persisted = !token.nil?
  end

  def self.load_all
    File.exist?(SIM_TOKENS) ? JSON.parse(File.read(SIM_TOKENS)) : { 'tokens' => [] }
  end

  # TokenAuthenticatable's digest lookup: the stored record whose token is ``value``.
  def self.find_by_token(value)
    row = load_all['tokens'].find { |t| t['token'] == value.to_s }
    return nil unless row
    expires = row['expires_at'] && Time.parse(row['expires_at'])
    new(user: User.find_by_username(row['user']), scopes: row['scopes'], name: row['name'],
        expires_at: expires, revoked: row['revoked'] || false, token: row['token'])
  end

  def set_token(value)
    @token = value
  end

  def revoked?
    @revoked ? true : false
  end

  def expired?
    !@expires_at.nil? && @expires_at < Time.now
  end

  def update!(**attrs)
    attrs.each { |k, v| public_send("#{k}=", v) }
    save!
  end

  def save!
    raise 'token is missing: call set_token first' if @token.to_s.empty?
    data = self.class.load_all
    if !@persisted && data['tokens'].any? { |t| t['token'] == @token }
      raise PG::UniqueViolation, 'ERROR:  duplicate key value violates unique constraint ' \
                                 '"index_personal_access_tokens_on_token_digest"'
    end
    data['tokens'].reject! { |t| t['token'] == @token }
    data['tokens'] << { 'token' => @token, 'user' => @user.username, 'name' => @name,
                        'scopes' => @scopes, 'revoked' => revoked?,
                        'expires_at' => @expires_at && @expires_at.strftime('%Y-%m-%d') }
    FileUtils.mkdir_p(File.dirname(SIM_TOKENS))
    File.write(SIM_TOKENS + '.tmp', JSON.generate(data))
    File.chmod(0o600, SIM_TOKENS + '.tmp')
    File.rename(SIM_TOKENS + '.tmp', SIM_TOKENS)
    @persisted = true
    true
  end
  alias save save!
end

class TokenList
  def initialize(user)
    @user = user
  end

  def create(**attrs)
    PersonalAccessToken.new(user: @user, **attrs)
  end
  alias new create

  def create!(**attrs)
    create(**attrs)
  end
end

class User
  attr_reader :username, :id

  def initialize(username, id)
    @username = username
    @id = id
  end

  def self.find_by_username(name)
    name == 'root' ? new('root', 1) : nil
  end

  def self.find_by(username: nil, id: nil, **_rest)
    return new('root', 1) if username == 'root' || id == 1
    nil
  end

  def self.find(id)
    find_by(id: id) || raise("Couldn't find User with 'id'=#{id}")
  end

  def admin?
    true
  end

  def personal_access_tokens
    TokenList.new(self)
  end
end
