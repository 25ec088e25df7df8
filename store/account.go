package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

type organisationRow struct {
	SIRET     string `gorm:"column:siret;primaryKey"`
	Name      string
	CreatedAt time.Time
}

func (organisationRow) TableName() string { return "organisations" }

type accountRow struct {
	ID                int64 `gorm:"primaryKey"`
	Login             string
	Civility          string
	Name              string
	Email             string
	PasswordHash      string
	PasswordSetAt     time.Time
	PasswordExpiresAt time.Time
	PasswordTemporary bool
	State             string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Source            string
	DirectoryDN       string `gorm:"column:directory_dn"`
	LastSeenAt        *time.Time
}

func (accountRow) TableName() string { return "accounts" }

type accountSIRETRow struct {
	AccountID int64  `gorm:"primaryKey;autoIncrement:false"`
	SIRET     string `gorm:"column:siret;primaryKey"`
}

func (accountSIRETRow) TableName() string { return "account_sirets" }

type sshKeyRow struct {
	ID          int64 `gorm:"primaryKey"`
	AccountID   int64
	Fingerprint string
	PublicKey   string
	Comment     string
	CreatedAt   time.Time
}

func (sshKeyRow) TableName() string { return "ssh_keys" }

// CreateOrganisation stores a new organisation, with its audit rows, if
// any, in the same transaction. ECONFLICT if the SIRET exists.
func (db *DB) CreateOrganisation(ctx context.Context, o *pigp.Organisation, audit ...*pigp.AuditEvent) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o.CreatedAt = db.now()
	row := organisationRow{SIRET: o.SIRET, Name: o.Name, CreatedAt: o.CreatedAt}
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return conflict(err, fmt.Sprintf("l'organisation %s existe déjà", o.SIRET))
		}
		return nil
	})
}

// FindOrganisation returns the organisation with the given SIRET, ENOTFOUND if none.
func (db *DB) FindOrganisation(ctx context.Context, siret string) (*pigp.Organisation, error) {
	var row organisationRow
	if err := db.with(ctx).Where("siret = ?", siret).Take(&row).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("organisation %s inconnue", siret))
	}
	return &pigp.Organisation{SIRET: row.SIRET, Name: row.Name, CreatedAt: row.CreatedAt}, nil
}

// ListOrganisations returns every organisation ordered by SIRET.
func (db *DB) ListOrganisations(ctx context.Context) ([]*pigp.Organisation, error) {
	var rows []organisationRow
	if err := db.with(ctx).Order("siret").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	out := make([]*pigp.Organisation, len(rows))
	for i, r := range rows {
		out[i] = &pigp.Organisation{SIRET: r.SIRET, Name: r.Name, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// CreateAccount stores a new account and its SIRETs, setting a.ID, with
// its audit rows, if any, in the same transaction. ECONFLICT for a
// duplicate login, ENOTFOUND for an unknown organisation.
func (db *DB) CreateAccount(ctx context.Context, a *pigp.Account, audit ...*pigp.AuditEvent) error {
	if err := a.Validate(); err != nil {
		return err
	}
	now := db.now()
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		for _, s := range a.SIRETs {
			var n int64
			if err := tx.Model(&organisationRow{}).Where("siret = ?", s).Count(&n).Error; err != nil {
				return fmt.Errorf("check organisation: %w", err)
			}
			if n == 0 {
				return pigp.Errorf(pigp.ENOTFOUND, "organisation %s inconnue : créez-la d'abord avec `pigp org add`", s)
			}
		}
		if a.Source == "" {
			a.Source = pigp.SourceLocal
		}
		row := accountRow{
			Login: a.Login, Civility: a.Civility, Name: a.Name, Email: a.Email, PasswordHash: a.PasswordHash,
			PasswordSetAt: utc(a.PasswordSetAt), PasswordExpiresAt: utc(a.PasswordExpiresAt),
			PasswordTemporary: a.PasswordTemporary, State: a.State, CreatedAt: now, UpdatedAt: now,
			Source: a.Source, DirectoryDN: a.DirectoryDN,
		}
		if err := tx.Create(&row).Error; err != nil {
			return conflict(err, fmt.Sprintf("l'identifiant %s existe déjà", a.Login))
		}
		for _, s := range a.SIRETs {
			if err := tx.Create(&accountSIRETRow{AccountID: row.ID, SIRET: s}).Error; err != nil {
				return conflict(err, fmt.Sprintf("SIRET %s en double", s))
			}
		}
		a.ID, a.CreatedAt = row.ID, now
		return nil
	})
}

func (db *DB) toAccount(ctx context.Context, tx *gorm.DB, r *accountRow) (*pigp.Account, error) {
	var sirets []string
	if err := tx.WithContext(ctx).Model(&accountSIRETRow{}).Where("account_id = ?", r.ID).Order("siret").Pluck("siret", &sirets).Error; err != nil {
		return nil, fmt.Errorf("read account sirets: %w", err)
	}
	a := &pigp.Account{
		ID: r.ID, Login: r.Login, Civility: r.Civility, Name: r.Name, Email: r.Email, SIRETs: sirets,
		PasswordHash: r.PasswordHash, PasswordSetAt: r.PasswordSetAt, PasswordExpiresAt: r.PasswordExpiresAt,
		PasswordTemporary: r.PasswordTemporary, State: r.State, CreatedAt: r.CreatedAt,
		Source: r.Source, DirectoryDN: r.DirectoryDN,
	}
	if a.Source == "" {
		a.Source = pigp.SourceLocal
	}
	if r.LastSeenAt != nil {
		a.LastSeenAt = *r.LastSeenAt
	}
	return a, nil
}

// FindAccountByLogin returns the account with the given login, ENOTFOUND if none.
func (db *DB) FindAccountByLogin(ctx context.Context, login string) (*pigp.Account, error) {
	var row accountRow
	if err := db.with(ctx).Where("login = ?", login).Take(&row).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("identifiant %s inconnu", login))
	}
	return db.toAccount(ctx, db.gdb, &row)
}

// FindAccountByID returns the account with the given id, ENOTFOUND if none.
func (db *DB) FindAccountByID(ctx context.Context, id int64) (*pigp.Account, error) {
	var row accountRow
	if err := db.with(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("compte %d inconnu", id))
	}
	return db.toAccount(ctx, db.gdb, &row)
}

// ListAccounts returns every account ordered by login.
func (db *DB) ListAccounts(ctx context.Context) ([]*pigp.Account, error) {
	var rows []accountRow
	if err := db.with(ctx).Order("login").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return db.toAccounts(ctx, rows)
}

// toAccounts maps account rows, with their SIRETs.
func (db *DB) toAccounts(ctx context.Context, rows []accountRow) ([]*pigp.Account, error) {
	out := make([]*pigp.Account, 0, len(rows))
	for i := range rows {
		a, err := db.toAccount(ctx, db.gdb, &rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// SetAccountState enables or disables an account, with its audit rows, if
// any, in the same transaction. ENOTFOUND if none.
func (db *DB) SetAccountState(ctx context.Context, login, state string, audit ...*pigp.AuditEvent) error {
	if state != pigp.AccountActive && state != pigp.AccountDisabled {
		return pigp.Errorf(pigp.EINVALID, "état de compte %q inconnu", state)
	}
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		res := tx.Model(&accountRow{}).Where("login = ?", login).
			Updates(map[string]any{"state": state, "updated_at": db.now()})
		if res.Error != nil {
			return fmt.Errorf("set account state: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return pigp.Errorf(pigp.ENOTFOUND, "identifiant %s inconnu", login)
		}
		if state == pigp.AccountDisabled {
			// A disabled account keeps no portal session.
			err := tx.Where("account_id IN (?)", tx.Session(&gorm.Session{NewDB: true}).Model(&accountRow{}).Select("id").Where("login = ?", login)).
				Delete(&portalSessionRow{}).Error
			if err != nil {
				return fmt.Errorf("revoke portal sessions: %w", err)
			}
		}
		return nil
	})
}

// SetCivility sets the civility shown before an account's name ("" for
// none). ENOTFOUND if the login does not exist.
func (db *DB) SetCivility(ctx context.Context, login, civility string) error {
	if civility != "" && civility != pigp.CivilityMr && civility != pigp.CivilityMme {
		return pigp.Errorf(pigp.EINVALID, "civilité %q invalide : MR ou MME", civility)
	}
	res := db.with(ctx).Model(&accountRow{}).Where("login = ?", login).
		Updates(map[string]any{"civility": civility, "updated_at": db.now()})
	if res.Error != nil {
		return fmt.Errorf("set civility: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return pigp.Errorf(pigp.ENOTFOUND, "identifiant %s inconnu", login)
	}
	return nil
}

type passwordHistoryRow struct {
	ID           int64 `gorm:"primaryKey"`
	AccountID    int64
	PasswordHash string
	SetAt        time.Time
}

func (passwordHistoryRow) TableName() string { return "password_history" }

// SetPassword replaces an account's password hash and its dates; the
// replaced hash goes to the password history and every portal session of
// the account ends; the audit rows, if any, are appended in the same
// transaction.
func (db *DB) SetPassword(ctx context.Context, login, hash string, setAt, expiresAt time.Time, temporary bool, audit ...*pigp.AuditEvent) error {
	return db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		var row accountRow
		if err := tx.Where("login = ?", login).Take(&row).Error; err != nil {
			return notFound(err, fmt.Sprintf("identifiant %s inconnu", login))
		}
		if err := tx.Create(&passwordHistoryRow{AccountID: row.ID, PasswordHash: row.PasswordHash, SetAt: row.PasswordSetAt}).Error; err != nil {
			return fmt.Errorf("record password history: %w", err)
		}
		// A new password ends every portal session of the account.
		if _, err := deleteAccountSessions(tx, row.ID); err != nil {
			return err
		}
		return tx.Model(&accountRow{}).Where("id = ?", row.ID).Updates(map[string]any{
			"password_hash": hash, "password_set_at": utc(setAt), "password_expires_at": utc(expiresAt),
			"password_temporary": temporary, "updated_at": db.now(),
		}).Error
	})
}

// PasswordHistory returns the hashes of the account's last n passwords,
// the current one first.
func (db *DB) PasswordHistory(ctx context.Context, accountID int64, n int) ([]string, error) {
	var current accountRow
	if err := db.with(ctx).Where("id = ?", accountID).Take(&current).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("compte %d inconnu", accountID))
	}
	out := []string{current.PasswordHash}
	if n <= 1 {
		return out, nil
	}
	var rows []passwordHistoryRow
	if err := db.with(ctx).Where("account_id = ?", accountID).Order("id DESC").Limit(n - 1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("password history: %w", err)
	}
	for _, r := range rows {
		out = append(out, r.PasswordHash)
	}
	return out, nil
}

// AddSSHKey attaches a public key to an account, with its audit rows, if
// any, in the same transaction. ECONFLICT if already there.
func (db *DB) AddSSHKey(ctx context.Context, k *pigp.SSHKey, audit ...*pigp.AuditEvent) error {
	row := sshKeyRow{AccountID: k.AccountID, Fingerprint: k.Fingerprint, PublicKey: k.PublicKey, Comment: k.Comment, CreatedAt: db.now()}
	err := db.withAudit(ctx, audit, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return conflict(err, fmt.Sprintf("la clé %s est déjà enregistrée pour ce compte", k.Fingerprint))
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.ID, k.CreatedAt = row.ID, row.CreatedAt
	return nil
}

// FindSSHKey returns the key of an account with the given fingerprint, ENOTFOUND if none.
func (db *DB) FindSSHKey(ctx context.Context, accountID int64, fingerprint string) (*pigp.SSHKey, error) {
	var r sshKeyRow
	if err := db.with(ctx).Where("account_id = ? AND fingerprint = ?", accountID, fingerprint).Take(&r).Error; err != nil {
		return nil, notFound(err, "clé inconnue")
	}
	return &pigp.SSHKey{ID: r.ID, AccountID: r.AccountID, Fingerprint: r.Fingerprint, PublicKey: r.PublicKey, Comment: r.Comment, CreatedAt: r.CreatedAt}, nil
}

// ListSSHKeys returns an account's keys.
func (db *DB) ListSSHKeys(ctx context.Context, accountID int64) ([]*pigp.SSHKey, error) {
	var rows []sshKeyRow
	if err := db.with(ctx).Where("account_id = ?", accountID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list ssh keys: %w", err)
	}
	out := make([]*pigp.SSHKey, len(rows))
	for i, r := range rows {
		out[i] = &pigp.SSHKey{ID: r.ID, AccountID: r.AccountID, Fingerprint: r.Fingerprint, PublicKey: r.PublicKey, Comment: r.Comment, CreatedAt: r.CreatedAt}
	}
	return out, nil
}
